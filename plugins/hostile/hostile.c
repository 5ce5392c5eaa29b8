// Misbehaving `rule` plugins for the host's tests. One source, built three
// ways by plugins/build:
//   -DHOSTILE_LOOP    spins forever (stopped by fuel or the epoch deadline)
//   -DHOSTILE_MEMORY  allocates until it is stopped (the memory cap)
//   -DHOSTILE_TRAP    logs a line, then traps mid-call
// The `-DHOSTILE_NEWER` build (against a copy of the WIT with a newer
// version) is an otherwise well-behaved plugin the host must refuse.
#include <stdlib.h>
#include <string.h>

#include "rule.h"

static void say(const char *text) {
    rule_string_t message;
    rule_string_set(&message, text);
    docket_plugin_host_log(DOCKET_PLUGIN_HOST_LEVEL_INFO, &message);
}

bool exports_docket_plugin_rule_handler_handle(exports_docket_plugin_rule_handler_event_t *event,
                                               exports_docket_plugin_rule_handler_list_action_t *ret,
                                               exports_docket_plugin_rule_handler_plugin_error_t *err) {
    (void)err;
    docket_plugin_types_event_free(event);
    ret->ptr = NULL;
    ret->len = 0;
#if defined(HOSTILE_LOOP)
    say("looping forever");
    volatile unsigned long spins = 0;
    for (;;) spins++;
#elif defined(HOSTILE_MEMORY)
    say("allocating until stopped");
    for (;;) {
        // Each block grows the linear memory; touching both ends keeps
        // the allocation from being optimised away.
        volatile char *block = malloc(1 << 20);
        if (block == NULL) {
            // malloc gave up without the host stopping it: fail loudly.
            __builtin_trap();
        }
        block[0] = 1;
        block[(1 << 20) - 1] = 1;
    }
#elif defined(HOSTILE_TRAP)
    say("about to trap");
    __builtin_trap();
#else
    say("a well-behaved plugin");
#endif
    return true;
}
