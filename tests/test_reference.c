/*
 * test_reference.c - schemas/signals.md is what td_signals_reference_md()
 * writes today, so the reference page cannot go stale: change the catalog,
 * then regenerate the page with
 *
 *     build/trustctl reference > schemas/signals.md
 *
 * Also checks what the page must contain: every signal once, and a line in
 * the helper glossary for every helper a condition or value uses.
 *
 * Tests run from the repository root; the file is also found from a
 * subdirectory (the root is the directory holding processor/signals.def).
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "signals.h"

#define PAGE "schemas/signals.md"

static char *want; /* the page as generated now */
static size_t want_len;

/* Reads a whole file; NULL if it cannot. Caller frees. */
static char *slurp(const char *path, size_t *lenp) {
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
        fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        *lenp = fread(buf, 1, (size_t)n, fp);
        buf[*lenp] = '\0';
    }
    fclose(fp);
    return buf;
}

/* Path of rel from the repository root: the cwd or one of its parents. */
static int repo_path(const char *rel, char *out, size_t size) {
    char prefix[64] = "";

    for (int up = 0; up < 4; up++) {
        char marker[128];
        snprintf(marker, sizeof(marker), "%sprocessor/signals.def", prefix);
        if (access(marker, R_OK) == 0) {
            snprintf(out, size, "%s%s", prefix, rel);
            return 0;
        }
        strncat(prefix, "../", sizeof(prefix) - strlen(prefix) - 1);
    }
    return -1;
}

static int group_setup(void **state) {
    FILE *fp = open_memstream(&want, &want_len);
    (void)state;

    if (!fp) return -1;
    td_signals_reference_md(fp);
    return fclose(fp) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    free(want);
    return 0;
}

/* Line number (1-based) of the first difference, and both lines. */
static int first_difference(
    const char *a, const char *b, char *la, char *lb, size_t size) {
    int line = 1;
    const char *sa = a, *sb = b;

    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            sa = a + 1;
            sb = b + 1;
        }
        a++;
        b++;
    }
    snprintf(la, size, "%.*s", (int)strcspn(sa, "\n"), sa);
    snprintf(lb, size, "%.*s", (int)strcspn(sb, "\n"), sb);
    return line;
}

static void test_signals_md_equals_the_generated_page(void **state) {
    char path[256], got_line[256], want_line[256];
    size_t len = 0;
    char *got;
    (void)state;

    if (repo_path(PAGE, path, sizeof(path)) != 0)
        fail_msg("cannot find the repository root (processor/signals.def) "
                 "from the current directory");
    got = slurp(path, &len);
    if (!got)
        fail_msg("%s is missing: run `build/trustctl reference > %s`", path,
                 PAGE);
    if (len != want_len || memcmp(got, want, len) != 0) {
        int line =
            first_difference(got, want, got_line, want_line, sizeof(got_line));
        free(got);
        fail_msg("%s is stale (line %d):\n  file: %s\n  now:  %s\n"
                 "regenerate it: build/trustctl reference > %s",
                 path, line, got_line, want_line, PAGE);
    }
    free(got);
}

static void test_page_lists_every_signal_once(void **state) {
    (void)state;
    for (int i = 0; i < TD_SIG__CNT; i++) {
        char cell[128];
        const char *p = want;
        int n = 0;

        snprintf(cell, sizeof(cell), "| `%s` |", td_signals[i].name);
        while ((p = strstr(p, cell)) != NULL) {
            n++;
            p += strlen(cell);
        }
        if (n != 1)
            fail_msg("%s appears %d times in the signal tables",
                     td_signals[i].name, n);
    }
}

/*
 * Every helper a condition or value uses (an upper-case name that is not
 * an argument of another helper and not a TD_ constant) has a line in the
 * glossary, which starts "| `NAME`" or "| `NAME(".
 */
static void check_helpers(const char *signal, const char *expr) {
    for (const char *p = expr; *p;) {
        char name[64], cell[80];
        size_t n = 0;

        if (!isupper((unsigned char)*p) ||
            (p > expr &&
             (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '('))) {
            p++;
            continue;
        }
        while ((isupper((unsigned char)p[n]) || isdigit((unsigned char)p[n]) ||
                p[n] == '_') &&
               n + 1 < sizeof(name)) {
            name[n] = p[n];
            n++;
        }
        name[n] = '\0';
        p += n;
        if (!strncmp(name, "TD_", 3) || n < 2) continue;
        snprintf(cell, sizeof(cell), "| `%s`", name);
        if (strstr(want, cell)) continue;
        snprintf(cell, sizeof(cell), "| `%s(", name);
        if (!strstr(want, cell))
            fail_msg("%s uses %s, which the helper glossary does not "
                     "explain (add it to helpers[] in signals.c)",
                     signal, name);
    }
}

static void test_every_helper_in_a_condition_is_explained(void **state) {
    (void)state;
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        check_helpers(td_signals[i].name, td_signals[i].cond);
        check_helpers(td_signals[i].name, td_signals[i].value);
    }
}

static void test_page_documents_layout_buyers_and_memory(void **state) {
    static const char *const musts[] = {
        "## Redis layout",
        "`trust:{<merchant_id>}:signals`",
        "`trust:{<merchant_id>}:wm`",
        "`trust:{<merchant_id>}:score`",
        "`trust:scores`",
        "`trust:part:{<topic>/<partition>}`",
        "**Absent fields.**",
        "**Value formatting.**",
        "## Distinct and repeat buyers",
        "HyperLogLog",
        "## Memory per merchant",
        "## Condition helpers",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(musts) / sizeof(musts[0]); i++) {
        if (!strstr(want, musts[i])) fail_msg("the page lacks %s", musts[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signals_md_equals_the_generated_page),
        cmocka_unit_test(test_page_lists_every_signal_once),
        cmocka_unit_test(test_every_helper_in_a_condition_is_explained),
        cmocka_unit_test(test_page_documents_layout_buyers_and_memory),
    };
    return cmocka_run_group_tests_name("reference", tests, group_setup,
                                       group_teardown);
}
