"""An `email-parser` plugin: turns monitoring alert emails into cases.

Alert emails look like this (Alertmanager, Nagios and Zabbix can all be
set up to send it):

    From: alerts@monitoring.example.com
    Subject: [ALERT] db-01 disk usage

    Severity: critical
    Host: db-01
    Service: disk
    Summary: Disk usage is 97% on /var

The case gets a clear subject, a priority from the severity, type
`Incident`, and an internal note with the alert's fields. Recovery notices
(`Severity: resolved`) are dropped: the alert's case is already there. So
is the same alert again within `repeat_minutes` (monitoring systems resend
until someone acts): the plugin remembers when it last let each alert
through in its storage. Every other email is kept as it is.

Configuration (JSON, set by the admin):

    {"senders": ["alerts@monitoring.example.com"],
     "priorities": {"critical": "Urgent", "warning": "High", "info": "Normal"},
     "repeat_minutes": 30}

Capabilities: `storage` (when each alert was last let through) and
`read-cases`, which it does not call: componentize-py imports every
function of the `host` interface, so a Python plugin asks for them all.
plugins/build uses `componentize-py --stub-wasi`, so the component imports
no WASI.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

DEFAULT_PRIORITIES = {"critical": "Urgent", "warning": "High", "info": "Normal"}
RECOVERED = {"resolved", "ok", "recovery"}


def alert_fields(text: str) -> dict[str, str]:
    """The `Key: value` lines at the top of the body, keys lower-cased."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            break
        fields[key.strip().lower()] = value.strip()
    return fields


class EmailParserHandler(exports.EmailParserHandler):
    def parse(self, email: types.ParsedEmail) -> types.EmailDecision:
        try:
            config = json.loads(host.config() or "{}")
        except ValueError as e:
            raise Err(types.PluginError("bad-config", f"configuration is not JSON: {e}"))
        senders = {s.lower() for s in config.get("senders", [])}
        if email.sender.email.lower() not in senders:
            return types.EmailDecision_Keep()

        fields = alert_fields(email.text)
        severity = fields.get("severity", "").lower()
        if not severity:
            host.log(host.Level.WARN, f"alert from {email.sender.email} has no Severity line; kept as is")
            return types.EmailDecision_Keep()
        if severity in RECOVERED:
            return types.EmailDecision_Drop(f"recovery notice for {fields.get('host', 'unknown host')}")

        host_name = fields.get("host", "unknown host")
        service = fields.get("service")
        key = f"last:{host_name}:{service}:{severity}"[:200]
        now = host.now()
        last = host.storage_get(key)
        repeat_ms = int(config.get("repeat_minutes", 30)) * 60_000
        if last is not None and now - int(last) < repeat_ms:
            return types.EmailDecision_Drop(f"repeat of the {severity} alert for {host_name} within {repeat_ms // 60_000} minutes")
        host.storage_set(key, str(now))

        priorities = {**DEFAULT_PRIORITIES, **config.get("priorities", {})}
        priority = priorities.get(severity, "Normal")
        summary = fields.get("summary") or email.subject
        subject = f"{host_name}: {service} – {summary}" if service else f"{host_name}: {summary}"
        details = "\n".join(f"{key.capitalize()}: {value}" for key, value in fields.items())
        host.log(host.Level.INFO, f"{severity} alert for {host_name}: priority {priority}")
        return types.EmailDecision_Rewrite(
            types.EmailFields(
                subject=subject[:250],
                description=f"{summary}\n\n{details}",
                priority=priority,
                case_type="Incident",
                actions=[types.Action_InternalNote(f"Alert fields (from {email.sender.email}):\n{details}")],
            )
        )
