/* crypto.h - WuKongIM payload encryption (spec §7): X25519 key exchange,
 * AES-128-CBC/PKCS#7 with Base64 text, msgKey signatures. OpenSSL 3 backed.
 * All functions are thread-safe; none keeps global state besides OpenSSL's. */
#ifndef MP_PROTO_CRYPTO_H
#define MP_PROTO_CRYPTO_H

#include "../common/buf.h"
#include "../common/mp.h"

/* Per-connection session keys. aes_key = 16 ASCII chars, iv = 16 ASCII chars (the salt). */
typedef struct crypto_keys {
    uint8_t aes_key[16];
    uint8_t iv[16];
} crypto_keys;

/* Fresh random X25519 private key and its public key. */
int crypto_x25519_keypair(uint8_t priv[32], uint8_t pub[32]);
/* Public key for a given private key (clamping is done inside). */
int crypto_x25519_public(const uint8_t priv[32], uint8_t pub[32]);
/* shared = X25519(priv, peer). MP_ECRYPTO on failure (e.g. all-zero output). */
int crypto_x25519_shared(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32]);

/* aes_key = first 16 chars of lowercase hex MD5(Base64Std(shared)). */
void crypto_derive_aes_key(const uint8_t shared[32], uint8_t aes_key[16]);
/* 16 random characters from [0-9a-zA-Z]. */
void crypto_random_salt(uint8_t salt[16]);

/* Server side of the handshake: decode the client's Base64 key (first 32 bytes used;
 * fewer -> MP_EINVAL), create a server key pair, derive keys, choose a salt.
 * server_pub_b64 receives 44 chars + NUL. */
int crypto_server_handshake(const char *client_key_b64, size_t len, crypto_keys *keys, char server_pub_b64[45]);

/* Base64 standard alphabet with padding. encode appends text; decode appends bytes and
 * returns MP_EINVAL for invalid input. */
void crypto_b64_encode(const uint8_t *in, size_t len, mp_buf *out);
int crypto_b64_decode(const char *in, size_t len, mp_buf *out);

/* Append Base64(AES-128-CBC-PKCS7(plain)) to out. */
int crypto_encrypt_b64(const crypto_keys *k, const uint8_t *plain, size_t len, mp_buf *out);
/* Decode Base64 text, decrypt, check length (non-zero multiple of 16) and PKCS#7 padding;
 * append plaintext to out. MP_ECRYPTO on any failure (out unchanged in length then). */
int crypto_decrypt_b64(const crypto_keys *k, const char *b64, size_t len, mp_buf *out);

/* msgKey = lowercase hex MD5(Base64(AES(sign))): 32 chars written to out (no NUL). */
int crypto_msgkey(const crypto_keys *k, const uint8_t *sign, size_t len, char out[32]);

/* SEND msgKey (spec §7.5): sign = clientSeq ‖ clientMsgNo ‖ channelID ‖ channelType ‖ payload(b64 text). */
int crypto_send_msgkey(const crypto_keys *k, uint32_t client_seq, mp_str client_msg_no, mp_str channel_id,
                       uint8_t channel_type, mp_str payload_b64, char out[32]);
/* RECV msgKey (spec §7.6): sign = messageID ‖ messageSeq ‖ clientMsgNo ‖ timestamp ‖ fromUID ‖
 * channelID ‖ channelType ‖ payload(b64 text). */
int crypto_recv_msgkey(const crypto_keys *k, int64_t message_id, uint32_t message_seq, mp_str client_msg_no,
                       int32_t timestamp, mp_str from_uid, mp_str channel_id, uint8_t channel_type,
                       mp_str payload_b64, char out[32]);

/* One RECV's sign fields, for the batched msgKeys below. */
typedef struct crypto_recv_sign {
    const crypto_keys *k;
    int64_t message_id;
    uint32_t message_seq;
    mp_str client_msg_no;
    int32_t timestamp;
    mp_str from_uid;
    mp_str channel_id;
    uint8_t channel_type;
    mp_str payload_b64;
} crypto_recv_sign;

/* Batched RECV msgKeys (a fan-out: one message, many connection keys), two steps on one
 * thread. crypto_recv_msgkey_lane(i, in) runs lane i's AES pass: call it right after
 * encrypting that connection's payload, while its key schedule is in place. Then
 * crypto_recv_msgkey_lanes(n, out) writes out[i] for the lanes 0..n-1 whose lane call
 * succeeded; the MD5s of texts of equal length (every lane, for one message to a group) run
 * several at a time (md5mb.h). Each equals crypto_recv_msgkey of the same fields. */
#define CRYPTO_MSGKEY_BATCH 8
int crypto_recv_msgkey_lane(size_t lane, const crypto_recv_sign *in);
void crypto_recv_msgkey_lanes(size_t n, char out[][32]);

/* AES runs on the CPU's AES instructions when it has them (aesni.h), else through
 * OpenSSL. on = 1 forces OpenSSL for the whole process (tests compare the two). */
void crypto_force_openssl(int on);

/* MD5 hex helper (32 lowercase chars, no NUL) and SHA-1 (20 bytes) for the WebSocket handshake. */
void crypto_md5_hex(const uint8_t *in, size_t len, char out[32]);
void crypto_sha1(const uint8_t *in, size_t len, uint8_t out[20]);

#endif
