// An `assigner` plugin: routes a case to an agent who speaks the language
// the customer wrote in, the one with the fewest open cases first.
//
// Configuration (JSON, set by the admin): for each language code, the
// usernames of the agents who speak it.
//   {"de": ["anna"], "fr": ["claire", "marc"], "es": ["lucia"]}
// Cases in a language nobody is listed for (or in English) go to the
// candidate with the fewest open cases.
// Capabilities: none.
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include "assigner.h"
#include "../common/minijson.h"
#include "../common/textbuf.h"

typedef struct {
    const char *code;
    const char *words[12];
} language_t;

// Short, frequent words that are rare in the other languages. Matched as
// whole words, case-insensitively.
static const language_t LANGUAGES[] = {
    {"de", {"und", "nicht", "bitte", "danke", "ich", "ist", "das", "mit", "hallo", "funktioniert", "kein", NULL}},
    {"fr", {"bonjour", "merci", "je", "est", "pas", "le", "avec", "une", "ne", "fonctionne", "vous", NULL}},
    {"es", {"hola", "gracias", "por", "favor", "el", "no", "funciona", "una", "con", "es", "mi", NULL}},
};
#define LANGUAGE_COUNT (sizeof LANGUAGES / sizeof LANGUAGES[0])

// How many words of `text` belong to `language`.
static int score(const language_t *language, const uint8_t *text, size_t len) {
    int hits = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && !isalpha(text[i])) i++;
        size_t start = i;
        while (i < len && isalpha(text[i])) i++;
        size_t word_len = i - start;
        if (word_len == 0) continue;
        for (const char *const *w = language->words; *w != NULL; w++) {
            if (minijson_equal_fold((const char *)text + start, word_len, *w, strlen(*w))) {
                hits++;
                break;
            }
        }
    }
    return hits;
}

// The language with the most hits (at least two), or NULL.
static const language_t *detect(const docket_plugin_types_case_snapshot_t *snapshot, int *best_hits) {
    const language_t *best = NULL;
    *best_hits = 1;
    for (size_t l = 0; l < LANGUAGE_COUNT; l++) {
        int hits = score(&LANGUAGES[l], snapshot->name.ptr, snapshot->name.len);
        if (snapshot->description.is_some) {
            hits += score(&LANGUAGES[l], snapshot->description.val.ptr, snapshot->description.val.len);
        }
        if (hits > *best_hits) {
            best = &LANGUAGES[l];
            *best_hits = hits;
        }
    }
    return best;
}

bool exports_docket_plugin_assigner_handler_choose(exports_docket_plugin_assigner_handler_assignment_input_t *input,
                                                   exports_docket_plugin_assigner_handler_option_assignment_choice_t *ret,
                                                   exports_docket_plugin_assigner_handler_plugin_error_t *err) {
    (void)err;
    ret->is_some = false;
    docket_plugin_types_list_candidate_t *candidates = &input->candidates;
    if (candidates->len == 0) {
        docket_plugin_types_assignment_input_free(input);
        return true;
    }
    assigner_string_t config;
    docket_plugin_host_config(&config);

    int hits = 0;
    const language_t *language = input->case_.is_some ? detect(&input->case_.val, &hits) : NULL;
    long chosen = -1;
    if (language != NULL) {
        for (size_t i = 0; i < candidates->len; i++) {
            const assigner_string_t *name = &candidates->ptr[i].username;
            bool speaks = minijson_array_has((const char *)config.ptr, config.len, language->code,
                                             (const char *)name->ptr, name->len);
            if (speaks && (chosen < 0 || candidates->ptr[i].open_cases < candidates->ptr[chosen].open_cases)) {
                chosen = (long)i;
            }
        }
    }
    textbuf_t reason = {0};
    bool by_language = chosen >= 0;
    if (by_language) {
        textbuf_str(&reason, "language ");
        textbuf_str(&reason, language->code);
        textbuf_str(&reason, " detected (");
        textbuf_long(&reason, hits);
        textbuf_str(&reason, " words); speaks it and has ");
    } else {
        for (size_t i = 0; i < candidates->len; i++) {
            if (chosen < 0 || candidates->ptr[i].open_cases < candidates->ptr[chosen].open_cases) chosen = (long)i;
        }
        textbuf_str(&reason, language ? "nobody listed for language " : "no language detected");
        if (language) textbuf_str(&reason, language->code);
        textbuf_str(&reason, "; the fewest open cases: ");
    }
    textbuf_long(&reason, candidates->ptr[chosen].open_cases);
    if (by_language) textbuf_str(&reason, " open cases");

    ret->is_some = true;
    assigner_string_dup_n(&ret->val.user_id, (const char *)candidates->ptr[chosen].user_id.ptr,
                          candidates->ptr[chosen].user_id.len);
    assigner_string_dup(&ret->val.reason, reason.text);
    assigner_string_free(&config);
    docket_plugin_types_assignment_input_free(input);
    return true;
}
