/* msglog.h - the message log: the durable record of every message write before it reaches
 * LMDB (store.c drives it; docs/performance.md explains why it exists).
 *
 * A SENDACK has to wait until its message is durable. Committing to LMDB makes it durable
 * but writes about 10 KB per message (copy-on-write pages of every channel a commit
 * touches, then two fsyncs), so a commit takes milliseconds whatever its size. The log
 * makes a message durable with one sequential append and one fdatasync of a few hundred
 * bytes per message; LMDB is then committed as before, off the acknowledgement's path.
 * After a crash, store_open replays the log: records whose writes LMDB already has are
 * recognised by the replay function and skipped.
 *
 * Files: two of them, "msglog-0" and "msglog-1", written in turn. Each begins with a header
 * (8-byte magic, u64 generation) and holds records: u32 length, u32 CRC-32 of (generation,
 * length, payload), payload. Writing switches to the other file once the current one is
 * past its size; the other file's records must all be in LMDB by then (the store checks).
 * The switch rewrites that file's header with the next generation, so its old records,
 * whose CRCs bind the old generation, end the replay where the new records end. Reading
 * stops at the first record that does not check (a torn tail: never acknowledged, since
 * acknowledgements wait for the fdatasync that covers the whole append).
 *
 * One thread uses a log at a time (store_open, then the store's log thread). */
#ifndef MP_STORE_MSGLOG_H
#define MP_STORE_MSGLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct mlog mlog;

#define MLOG_MAX_RECORD (64u << 20)

/* Open (creating if missing) the two files in dir; file_size is when to switch (bytes). */
int mlog_open(const char *dir, uint64_t file_size, mlog **out);
void mlog_close(mlog *l);

/* Visit every record, older file first, oldest first; fn returns MP_OK to go on, anything
 * else stops the replay and is returned. */
typedef int (*mlog_record_fn)(void *ctx, const uint8_t *rec, size_t len);
int mlog_replay(mlog *l, mlog_record_fn fn, void *ctx);
/* Records the last mlog_replay visited. */
uint64_t mlog_replayed(const mlog *l);
/* Start empty, in a new generation (after a replay whose writes are durable in LMDB). */
int mlog_reset(mlog *l);

/* Bytes a record of len takes in the file. */
size_t mlog_framed_size(size_t len);
/* 1 when appending `more` framed bytes would take the current file past its size. */
int mlog_switch_due(const mlog *l, size_t more);
/* Continue in the other file (new generation, header durable). Only with nothing
 * pending; the caller guarantees every record of the other file is durable in LMDB. */
int mlog_switch(mlog *l);
/* Frame a record into the pending append (nothing is written yet). */
void mlog_add(mlog *l, const uint8_t *rec, size_t len);
/* Write the pending append and fdatasync it. MP_OK or MP_EIO (logged). */
int mlog_flush(mlog *l);

#endif
