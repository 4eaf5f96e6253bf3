/*
 * signals_zh.h - the signal catalog's meanings in Simplified Chinese
 * (signals_zh.def), beside the English ones of signals.def.
 */
#ifndef TD_SIGNALS_ZH_H
#define TD_SIGNALS_ZH_H

/* The zh-CN meaning of signal id (td_signal_id_t), or NULL when the
 * catalog has no line for it (test_signals fails then) or id is out of
 * range. Static storage, UTF-8. */
const char *td_signal_meaning_zh(int id);

/* The zh-CN name of category cat (td_category_t), or NULL. */
const char *td_category_name_zh(int cat);

#endif
