// A `rule` plugin: cases of VIP accounts get a higher priority and an
// internal note saying how many times the account has been escalated.
//
// Configuration (JSON, set by the admin):
//   {"vip_accounts": ["Acme Corp", "Globex"], "priority": "Urgent"}
// Capabilities: `storage` (the escalation count per account).
//
// Build: plugins/build (wit-bindgen c, clang --target=wasm32-wasi,
// wasm-tools component new).
#include <stdlib.h>
#include <string.h>

#include "rule.h"
#include "../common/minijson.h"
#include "../common/textbuf.h"

static void log_line(docket_plugin_host_level_t level, const char *text) {
    rule_string_t message;
    rule_string_set(&message, text);
    docket_plugin_host_log(level, &message);
}

static bool is_vip(const rule_string_t *config, const rule_string_t *account) {
    return minijson_array_has((const char *)config->ptr, config->len, "vip_accounts", (const char *)account->ptr,
                              account->len);
}

// Adds one to the stored count for the account and returns the new count.
static long count_escalation(const rule_string_t *account) {
    textbuf_t key = {0};
    textbuf_str(&key, "escalations:");
    textbuf_bytes(&key, account->ptr, account->len);
    rule_string_t key_string;
    rule_string_set(&key_string, key.text);
    rule_string_t stored;
    long count = 0;
    if (docket_plugin_host_storage_get(&key_string, &stored)) {
        char digits[32] = {0};
        size_t n = stored.len < sizeof digits - 1 ? stored.len : sizeof digits - 1;
        memcpy(digits, stored.ptr, n);
        count = strtol(digits, NULL, 10);
        rule_string_free(&stored);
    }
    count += 1;
    textbuf_t value = {0};
    textbuf_long(&value, count);
    rule_string_t value_string;
    rule_string_set(&value_string, value.text);
    docket_plugin_host_plugin_error_t error;
    if (!docket_plugin_host_storage_set(&key_string, &value_string, &error)) {
        log_line(DOCKET_PLUGIN_HOST_LEVEL_WARN, "could not store the escalation count");
        docket_plugin_types_plugin_error_free(&error);
    }
    return count;
}

bool exports_docket_plugin_rule_handler_handle(exports_docket_plugin_rule_handler_event_t *event,
                                               exports_docket_plugin_rule_handler_list_action_t *ret,
                                               exports_docket_plugin_rule_handler_plugin_error_t *err) {
    ret->ptr = NULL;
    ret->len = 0;
    if (!event->case_.is_some || !event->case_.val.account_name.is_some) {
        docket_plugin_types_event_free(event);
        return true;
    }
    docket_plugin_types_case_snapshot_t *snapshot = &event->case_.val;
    rule_string_t config;
    docket_plugin_host_config(&config);

    char priority[32] = "Urgent";
    minijson_get_string((const char *)config.ptr, config.len, "priority", priority, sizeof priority);
    if (strlen(priority) == 0) {
        rule_string_dup(&err->code, "bad-config");
        rule_string_dup(&err->message, "`priority` must not be empty");
        rule_string_free(&config);
        docket_plugin_types_event_free(event);
        return false;
    }

    const rule_string_t *account = &snapshot->account_name.val;
    bool already = snapshot->priority.len == strlen(priority) && memcmp(snapshot->priority.ptr, priority, snapshot->priority.len) == 0;
    if (!is_vip(&config, account) || already) {
        rule_string_free(&config);
        docket_plugin_types_event_free(event);
        return true;
    }

    long count = count_escalation(account);
    ret->ptr = calloc(2, sizeof(docket_plugin_types_action_t));
    ret->len = 2;

    textbuf_t json_priority = {0};
    textbuf_str(&json_priority, "\"");
    textbuf_str(&json_priority, priority);
    textbuf_str(&json_priority, "\"");
    ret->ptr[0].tag = DOCKET_PLUGIN_TYPES_ACTION_SET;
    rule_string_dup(&ret->ptr[0].val.set.field, "priority");
    rule_string_dup(&ret->ptr[0].val.set.value, json_priority.text);

    textbuf_t note = {0};
    textbuf_str(&note, "VIP account ");
    textbuf_bytes(&note, account->ptr, account->len);
    textbuf_str(&note, ": priority raised to ");
    textbuf_str(&note, priority);
    textbuf_str(&note, " (escalation #");
    textbuf_long(&note, count);
    textbuf_str(&note, " for this account).");
    ret->ptr[1].tag = DOCKET_PLUGIN_TYPES_ACTION_INTERNAL_NOTE;
    rule_string_dup(&ret->ptr[1].val.internal_note, note.text);

    log_line(DOCKET_PLUGIN_HOST_LEVEL_INFO, note.text);
    rule_string_free(&config);
    docket_plugin_types_event_free(event);
    return true;
}
