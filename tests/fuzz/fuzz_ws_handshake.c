/* fuzz_ws_handshake.c - the WebSocket upgrade request parser (ws_handshake_parse, src/net/ws.h).
 *
 * The input is what a client sends first on the WebSocket port. Invariants:
 *   - the result is one of the documented codes, and MP_ETOOBIG only for >= 8 KiB of input;
 *   - on MP_OK the head is inside the input, ends with CRLF CRLF, and parsing exactly the
 *     head again gives the same result (the head is self-contained); the accept value is 28
 *     Base64 characters and the forwarded address, if any, is NUL-terminated within its
 *     buffer, even a tiny one;
 *   - the head minus its last byte is incomplete (MP_EAGAIN): the first CRLF CRLF ends it. */
#include <string.h>

#include "common/buf.h"
#include "fuzz_util.h"
#include "net/ws.h"

static int is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
           c == '=';
}

static int parse(const uint8_t *buf, size_t len, size_t *consumed, char accept[29], char *xff, size_t cap) {
    /* An exact-size heap copy: ASan catches any read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, buf, len);
    int rc = ws_handshake_parse(copy, len, consumed, accept, xff, cap);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t consumed = 0;
    char accept[29], xff[64];
    memset(xff, 'x', sizeof xff);
    int rc = parse(data, size, &consumed, accept, xff, sizeof xff);
    FUZZ_CHECK(rc == MP_OK || rc == MP_EAGAIN || rc == MP_EPROTO || rc == MP_ETOOBIG);
    FUZZ_CHECK(memchr(xff, 0, sizeof xff) != NULL);
    if (rc == MP_ETOOBIG) FUZZ_CHECK(size >= 8192);
    if (rc != MP_OK) return 0;

    FUZZ_CHECK(consumed >= 4 && consumed <= size && consumed <= 8192);
    FUZZ_CHECK(memcmp(data + consumed - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(accept[28] == 0);
    for (int i = 0; i < 28; i++) FUZZ_CHECK(is_b64(accept[i]));

    size_t again = 0;
    char accept2[29], xff2[64], tiny[4];
    FUZZ_CHECK(parse(data, consumed, &again, accept2, xff2, sizeof xff2) == MP_OK);
    FUZZ_CHECK(again == consumed && memcmp(accept, accept2, 29) == 0 && strcmp(xff, xff2) == 0);
    FUZZ_CHECK(parse(data, consumed, &again, accept2, tiny, sizeof tiny) == MP_OK);
    FUZZ_CHECK(memchr(tiny, 0, sizeof tiny) != NULL);
    FUZZ_CHECK(parse(data, consumed, &again, accept2, NULL, 0) == MP_OK);
    /* One byte short of the head: the final CRLF is missing, so it cannot be complete. */
    FUZZ_CHECK(parse(data, consumed - 1, &again, accept2, NULL, 0) == MP_EAGAIN);

    mp_buf out = MP_BUF_INIT;
    ws_handshake_response(accept, &out);
    FUZZ_CHECK(out.len > 28 && memcmp(out.data + out.len - 32, accept, 28) == 0);
    mp_buf_free(&out);
    return 0;
}
