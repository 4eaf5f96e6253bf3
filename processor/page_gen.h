/*
 * page_gen.h - the files of trustctl serve's page (processor/page/), built
 * into the binary by tests/gen_page.sh as build/gen/page_gen.c.
 */
#ifndef TD_PAGE_GEN_H
#define TD_PAGE_GEN_H

#include <stddef.h>

typedef struct td_page_file_s {
    const char *name; /* file name, e.g. "index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} td_page_file_t;

extern const td_page_file_t td_page_files[];
extern const size_t td_page_file_cnt;

#endif
