/* msglog.c - the message log's files (msglog.h). */
#include "msglog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/mp.h"

#define COMP "store"
#define MAGIC "MPMLOG01"
#define HEADER 16 /* magic + generation */
#define FRAME 8   /* length + CRC */

typedef struct mfile {
    int fd;
    uint64_t gen; /* 0 = no valid header */
    char path[4096];
} mfile;

struct mlog {
    mfile f[2];
    int cur;          /* the file being written */
    uint64_t off;     /* its write position */
    uint64_t size;    /* switch when a file would grow past this */
    mp_buf pending;   /* framed records not yet written */
    uint64_t replayed; /* records the last mlog_replay visited */
};

static uint32_t frame_crc(uint64_t gen, uint32_t len, const uint8_t *p) {
    uint8_t hdr[12];
    mp_store_u64be(hdr, gen);
    hdr[8] = (uint8_t)(len >> 24), hdr[9] = (uint8_t)(len >> 16), hdr[10] = (uint8_t)(len >> 8), hdr[11] = (uint8_t)len;
    uLong c = crc32(0L, hdr, sizeof hdr);
    return (uint32_t)crc32(c, p, (uInt)len);
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int io_failed(const mfile *f, const char *what) {
    LOG_ERROR(COMP, "message log write failed op=%s file=%s err=\"%s\"", what, f->path, strerror(errno));
    return MP_EIO;
}

/* Header with generation gen, durable. */
static int write_header(mfile *f, uint64_t gen) {
    uint8_t h[HEADER + 4] = {0}; /* + a zero length: an empty file reads as empty at once */
    memcpy(h, MAGIC, 8);
    mp_store_u64be(h + 8, gen);
    if (write_all(f->fd, h, sizeof h, 0) != 0) return io_failed(f, "header");
    if (fdatasync(f->fd) != 0) return io_failed(f, "fdatasync");
    f->gen = gen;
    return MP_OK;
}

static void read_header(mfile *f) {
    uint8_t h[HEADER];
    f->gen = 0;
    if (pread(f->fd, h, sizeof h, 0) == (ssize_t)sizeof h && memcmp(h, MAGIC, 8) == 0) f->gen = mp_load_u64be(h + 8);
}

/* fsync the directory, so files just created survive a power loss. */
static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int mlog_open(const char *dir, uint64_t file_size, mlog **out) {
    *out = NULL;
    mlog *l = mp_calloc(1, sizeof *l);
    l->size = file_size;
    int created = 0;
    for (int i = 0; i < 2; i++) {
        mfile *f = &l->f[i];
        snprintf(f->path, sizeof f->path, "%s/msglog-%d", dir, i);
        f->fd = open(f->path, O_RDWR | O_CLOEXEC, 0644);
        if (f->fd < 0 && errno == ENOENT) {
            f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            created = 1;
        }
        if (f->fd < 0) {
            LOG_ERROR(COMP, "cannot open the message log file=%s err=\"%s\"", f->path, strerror(errno));
            if (i == 1) close(l->f[0].fd);
            free(l);
            return MP_EIO;
        }
        read_header(f);
    }
    if (created && sync_dir(dir) != 0) LOG_WARN(COMP, "cannot fsync the data directory dir=%s err=\"%s\"", dir, strerror(errno));
    *out = l;
    return MP_OK;
}

void mlog_close(mlog *l) {
    if (!l) return;
    for (int i = 0; i < 2; i++) close(l->f[i].fd);
    mp_buf_free(&l->pending);
    free(l);
}

/* Visit file f's records until the first that does not check. */
static int replay_file(const mfile *f, mlog_record_fn fn, void *ctx, uint64_t *count) {
    struct stat st;
    if (f->gen == 0 || fstat(f->fd, &st) != 0 || (uint64_t)st.st_size <= HEADER) return MP_OK;
    size_t n = (size_t)st.st_size;
    uint8_t *data = mp_malloc(n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, data + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    int rc = MP_OK;
    for (size_t off = HEADER; off + FRAME <= got;) {
        uint32_t len = mp_load_u32be(data + off), crc = mp_load_u32be(data + off + 4);
        if (len == 0 || len > MLOG_MAX_RECORD || len > got - off - FRAME) break;
        const uint8_t *p = data + off + FRAME;
        if (frame_crc(f->gen, len, p) != crc) break;
        if ((rc = fn(ctx, p, len)) != MP_OK) break;
        (*count)++;
        off += FRAME + len;
    }
    free(data);
    return rc;
}

int mlog_replay(mlog *l, mlog_record_fn fn, void *ctx) {
    int older = l->f[0].gen <= l->f[1].gen ? 0 : 1;
    uint64_t count = 0;
    int rc = replay_file(&l->f[older], fn, ctx, &count);
    if (rc == MP_OK) rc = replay_file(&l->f[!older], fn, ctx, &count);
    l->replayed = count;
    return rc;
}

int mlog_reset(mlog *l) {
    uint64_t gen = (l->f[0].gen > l->f[1].gen ? l->f[0].gen : l->f[1].gen) + 1;
    /* The other file keeps an older generation: replayed first, its records are all in
     * LMDB, and the replay function skips them. Emptying it only saves that work. */
    if (ftruncate(l->f[1].fd, 0) != 0) return io_failed(&l->f[1], "truncate");
    l->f[1].gen = 0;
    l->cur = 0;
    l->off = HEADER;
    l->pending.len = 0;
    return write_header(&l->f[0], gen);
}

size_t mlog_framed_size(size_t len) { return FRAME + len; }

uint64_t mlog_replayed(const mlog *l) { return l->replayed; }

int mlog_switch_due(const mlog *l, size_t more) { return l->off > HEADER && l->off + l->pending.len + more > l->size; }

int mlog_switch(mlog *l) {
    MP_ASSERT(l->pending.len == 0);
    int next = !l->cur;
    int rc = write_header(&l->f[next], l->f[l->cur].gen + 1);
    if (rc != MP_OK) return rc;
    l->cur = next;
    l->off = HEADER;
    return MP_OK;
}

void mlog_add(mlog *l, const uint8_t *rec, size_t len) {
    MP_ASSERT(len > 0 && len <= MLOG_MAX_RECORD);
    uint8_t fr[FRAME];
    mp_store_u32be(fr, (uint32_t)len);
    mp_store_u32be(fr + 4, frame_crc(l->f[l->cur].gen, (uint32_t)len, rec));
    mp_buf_append(&l->pending, fr, FRAME);
    mp_buf_append(&l->pending, rec, len);
}

int mlog_flush(mlog *l) {
    if (l->pending.len == 0) return MP_OK;
    mfile *f = &l->f[l->cur];
    if (write_all(f->fd, l->pending.data, l->pending.len, l->off) != 0) return io_failed(f, "append");
    if (fdatasync(f->fd) != 0) return io_failed(f, "fdatasync");
    l->off += l->pending.len;
    l->pending.len = 0;
    return MP_OK;
}
