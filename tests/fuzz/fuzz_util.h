/* fuzz_util.h - shared helpers for the libFuzzer targets in tests/fuzz.
 * FUZZ_CHECK states an invariant of the code under test: when it fails the target aborts,
 * and libFuzzer records the input as a crash (like an ASan/UBSan report). */
#ifndef MP_FUZZ_UTIL_H
#define MP_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "common/mp.h"

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Two borrowed strings have the same bytes. */
static inline int fuzz_str_eq(mp_str a, mp_str b) { return mp_str_eq(a, b); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
