/*
 * signals_zh.c - td_signal_meaning_zh(): signals_zh.def as a table indexed
 * by the signal enum.
 */
#include "signals_zh.h"

#include "signals.h"

/* clang-format off */
static const char *const meanings_zh[TD_SIG__CNT] = {
#define TD_SIG_ZH(name, meaning) [TD_SIG_##name] = meaning,
#include "signals_zh.def"
};
static const char *const categories_zh[TD_CAT__CNT] = {
#define TD_CAT_ZH(cat, name) [TD_CAT_##cat] = name,
#include "signals_zh.def"
};
/* clang-format on */

const char *td_signal_meaning_zh(int id) {
    return id >= 0 && id < TD_SIG__CNT ? meanings_zh[id] : NULL;
}

const char *td_category_name_zh(int cat) {
    return cat >= 0 && cat < TD_CAT__CNT ? categories_zh[cat] : NULL;
}
