/* fmp4_index: see fmp4_index.h.  The top-level boxes are walked with pread;
 * only moov and moof are read into memory (each capped), mdat is skipped by
 * its size.  Every read inside a box goes through struct buf, which checks
 * the length first, so a malformed box ends in -EBADMSG and never reads past
 * the bytes that were read. */
#include "common/fmp4_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOX(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* Our moov (empty_moov) is a few KB and a moof of a fragment of a few MB a
 * few KB more; these only stop a corrupt size from costing memory. */
#define MOOV_MAX (16u << 20)
#define MOOF_MAX (16u << 20)
#define TOP_BOXES_MAX (1u << 20)
#define FRAGMENTS_MAX (1u << 20)
#define FRAGMENT_SAMPLES_MAX (1u << 20)
#define DTS_MAX (INT64_MAX / 4)

#define TFHD_BASE_DATA_OFFSET 0x000001
#define TFHD_SAMPLE_DESC_INDEX 0x000002
#define TFHD_DEFAULT_DURATION 0x000008
#define TFHD_DEFAULT_SIZE 0x000010
#define TFHD_DEFAULT_FLAGS 0x000020
#define TFHD_DURATION_IS_EMPTY 0x010000
#define TFHD_DEFAULT_BASE_IS_MOOF 0x020000

#define TRUN_DATA_OFFSET 0x000001
#define TRUN_FIRST_SAMPLE_FLAGS 0x000004
#define TRUN_SAMPLE_DURATION 0x000100
#define TRUN_SAMPLE_SIZE 0x000200
#define TRUN_SAMPLE_FLAGS 0x000400
#define TRUN_SAMPLE_CTS 0x000800

/* Bytes not yet parsed of a box held in memory. */
struct buf {
        const uint8_t *p;
        size_t n;
};

static uint64_t be(const uint8_t *p, int n)
{
        uint64_t v = 0;

        for (int i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

static int buf_skip(struct buf *b, size_t n)
{
        if (n > b->n)
                return -EBADMSG;
        b->p += n;
        b->n -= n;
        return 0;
}

/* Big-endian unsigned of n (1..8) bytes. */
static int buf_get(struct buf *b, int n, uint64_t *v)
{
        if ((size_t)n > b->n)
                return -EBADMSG;
        *v = be(b->p, n);
        return buf_skip(b, (size_t)n);
}

static int buf_u32(struct buf *b, uint32_t *v)
{
        uint64_t x = 0;
        int e = buf_get(b, 4, &x);

        *v = (uint32_t)x;
        return e;
}

/* Splits the next child box off b into type and payload: 1, 0 at the end
 * of b, or -EBADMSG.  Size 0 means "to the end of the parent". */
static int buf_next_box(struct buf *b, uint32_t *type, struct buf *payload)
{
        uint64_t size, t, hdr = 8;

        if (b->n == 0)
                return 0;
        if (buf_get(b, 4, &size) < 0 || buf_get(b, 4, &t) < 0)
                return -EBADMSG;
        if (size == 1) {
                if (buf_get(b, 8, &size) < 0)
                        return -EBADMSG;
                hdr = 16;
        } else if (size == 0) {
                size = b->n + hdr;
        }
        if (size < hdr || size - hdr > b->n)
                return -EBADMSG;
        *type = (uint32_t)t;
        payload->p = b->p;
        payload->n = (size_t)(size - hdr);
        return buf_skip(b, payload->n) < 0 ? -EBADMSG : 1;
}

/* Finds the first child of the given type: 1, 0 if there is none, -EBADMSG. */
static int buf_find_box(struct buf b, uint32_t type, struct buf *payload)
{
        uint32_t t;
        int r;

        while ((r = buf_next_box(&b, &t, payload)) > 0)
                if (t == type)
                        return 1;
        return r;
}

static int buf_fullbox(struct buf *b, unsigned *version, uint32_t *flags)
{
        uint32_t v;
        int e = buf_u32(b, &v);

        *version = v >> 24;
        *flags = v & 0xffffff;
        return e;
}

/* ---- moov ------------------------------------------------------------------ */

struct video_track {
        uint32_t id, timescale;
        uint32_t default_duration, default_size; /* trex */
        bool found, have_trex;
};

/* 1 and the track's id and timescale if trak is a video track, 0 if it is
 * another kind, -EBADMSG. */
static int parse_trak(struct buf trak, struct video_track *vt)
{
        struct buf tkhd, mdia, mdhd, hdlr;
        uint32_t flags, handler, id, timescale;
        unsigned version;

        if (buf_find_box(trak, BOX('m', 'd', 'i', 'a'), &mdia) <= 0 ||
            buf_find_box(mdia, BOX('h', 'd', 'l', 'r'), &hdlr) <= 0 ||
            buf_fullbox(&hdlr, &version, &flags) < 0 || buf_skip(&hdlr, 4) < 0 || /* pre_defined */
            buf_u32(&hdlr, &handler) < 0)
                return -EBADMSG;
        if (handler != BOX('v', 'i', 'd', 'e'))
                return 0;

        if (buf_find_box(trak, BOX('t', 'k', 'h', 'd'), &tkhd) <= 0 || buf_fullbox(&tkhd, &version, &flags) < 0 ||
            version > 1 || buf_skip(&tkhd, version ? 16 : 8) < 0 || buf_u32(&tkhd, &id) < 0 || id == 0)
                return -EBADMSG;
        if (buf_find_box(mdia, BOX('m', 'd', 'h', 'd'), &mdhd) <= 0 || buf_fullbox(&mdhd, &version, &flags) < 0 ||
            version > 1 || buf_skip(&mdhd, version ? 16 : 8) < 0 || buf_u32(&mdhd, &timescale) < 0 ||
            timescale == 0)
                return -EBADMSG;
        vt->id = id;
        vt->timescale = timescale;
        return 1;
}

static int parse_trex(struct buf mvex, struct video_track *vt)
{
        struct buf b;
        uint32_t type;
        int r;

        while ((r = buf_next_box(&mvex, &type, &b)) > 0) {
                uint32_t flags, id, desc;
                unsigned version;

                if (type != BOX('t', 'r', 'e', 'x'))
                        continue;
                if (buf_fullbox(&b, &version, &flags) < 0 || buf_u32(&b, &id) < 0 || buf_u32(&b, &desc) < 0 ||
                    buf_u32(&b, &vt->default_duration) < 0 || buf_u32(&b, &vt->default_size) < 0)
                        return -EBADMSG;
                if (id == vt->id) {
                        vt->have_trex = true;
                        return 0;
                }
        }
        return r;
}

/* The first video track and its trex defaults.  -EBADMSG without either:
 * no mvex means the file is not fragmented. */
static int parse_moov(struct buf moov, struct video_track *vt)
{
        struct buf it = moov, b;
        uint32_t type;
        int r;

        while (!vt->found && (r = buf_next_box(&it, &type, &b)) > 0) {
                if (type != BOX('t', 'r', 'a', 'k'))
                        continue;
                r = parse_trak(b, vt);
                if (r < 0)
                        return r;
                vt->found = r > 0;
        }
        if (!vt->found)
                return -EBADMSG;
        /* mvex follows the traks in libavformat's files but may precede them */
        if (buf_find_box(moov, BOX('m', 'v', 'e', 'x'), &b) <= 0 || parse_trex(b, vt) < 0 || !vt->have_trex)
                return -EBADMSG;
        return 0;
}

/* ---- moof ------------------------------------------------------------------ */

struct traf_defaults {
        uint64_t base;      /* where the data of the traf's first trun is counted from */
        uint32_t duration, size;
        bool base_known;
};

/* Where this fragment lies in the file, and its mdat payload. */
struct frag_place {
        uint64_t moof_off, mdat_data, mdat_end;
};

struct frag_acc {
        uint32_t samples;
        int64_t duration;
        int64_t first_pts;
        bool have_first;
};

/* One trun of the video traf: adds its samples and durations to acc and
 * checks that its data lies inside the mdat.  *dts is the decode time of its
 * first sample and *pos where its data starts when it has no data-offset;
 * on return, both are those of the next run. */
static int parse_trun(struct buf b, const struct traf_defaults *d, const struct frag_place *fp, int64_t *dts,
                      uint64_t *pos, bool *pos_known, struct frag_acc *acc)
{
        uint32_t flags, count, v;
        unsigned version;
        size_t rec;
        uint64_t bytes = 0;

        if (buf_fullbox(&b, &version, &flags) < 0 || version > 1 || buf_u32(&b, &count) < 0)
                return -EBADMSG;
        if (flags & TRUN_DATA_OFFSET) {
                if (buf_u32(&b, &v) < 0)
                        return -EBADMSG;
                *pos = d->base + (uint64_t)(int64_t)(int32_t)v;
                *pos_known = d->base_known;
        }
        if ((flags & TRUN_FIRST_SAMPLE_FLAGS) && buf_skip(&b, 4) < 0)
                return -EBADMSG;
        rec = 4 * (size_t)(!!(flags & TRUN_SAMPLE_DURATION) + !!(flags & TRUN_SAMPLE_SIZE) +
                           !!(flags & TRUN_SAMPLE_FLAGS) + !!(flags & TRUN_SAMPLE_CTS));
        if (count > FRAGMENT_SAMPLES_MAX - acc->samples || (size_t)count * rec > b.n)
                return -EBADMSG;

        /* the length check above covers every read of the loop */
        for (uint32_t i = 0; i < count; i++) {
                uint32_t dur = d->duration, size = d->size, cts = 0;

                if (flags & TRUN_SAMPLE_DURATION)
                        buf_u32(&b, &dur);
                if (flags & TRUN_SAMPLE_SIZE)
                        buf_u32(&b, &size);
                if (flags & TRUN_SAMPLE_FLAGS)
                        buf_skip(&b, 4);
                if (flags & TRUN_SAMPLE_CTS)
                        buf_u32(&b, &cts);
                if (!acc->have_first) {
                        /* version 1 offsets are signed, version 0 ones are not */
                        acc->first_pts = *dts + (version ? (int64_t)(int32_t)cts : (int64_t)cts);
                        acc->have_first = true;
                }
                *dts += dur;
                acc->duration += dur;
                bytes += size;
        }
        acc->samples += count;

        if (*pos_known && (*pos < fp->mdat_data || *pos > fp->mdat_end || bytes > fp->mdat_end - *pos))
                return -EBADMSG;
        *pos += bytes;
        return 0;
}

/* The video traf: tfhd, tfdt, then its truns in order.  *dts is the decode
 * time the traf starts at when it has no tfdt; on return, where it ends. */
static int parse_traf(struct buf traf, const struct video_track *vt, const struct frag_place *fp, bool first_traf,
                      int64_t *dts, struct frag_acc *acc)
{
        struct traf_defaults d = { .duration = vt->default_duration, .size = vt->default_size };
        struct buf b, it = traf;
        uint32_t tfhd_flags, flags, type, id, before = acc->samples;
        unsigned version;
        uint64_t pos, v;
        bool pos_known;
        int r;

        if (buf_find_box(traf, BOX('t', 'f', 'h', 'd'), &b) <= 0 || buf_fullbox(&b, &version, &tfhd_flags) < 0 ||
            buf_u32(&b, &id) < 0)
                return -EBADMSG;
        if (tfhd_flags & TFHD_BASE_DATA_OFFSET) {
                if (buf_get(&b, 8, &d.base) < 0)
                        return -EBADMSG;
                d.base_known = true;
        } else {
                /* without default-base-is-moof, only the first traf's data
                 * starts from the moof; later ones follow the previous
                 * traf's data, which we do not track */
                d.base = fp->moof_off;
                d.base_known = (tfhd_flags & TFHD_DEFAULT_BASE_IS_MOOF) || first_traf;
        }
        if (((tfhd_flags & TFHD_SAMPLE_DESC_INDEX) && buf_skip(&b, 4) < 0) ||
            ((tfhd_flags & TFHD_DEFAULT_DURATION) && buf_u32(&b, &d.duration) < 0) ||
            ((tfhd_flags & TFHD_DEFAULT_SIZE) && buf_u32(&b, &d.size) < 0) ||
            ((tfhd_flags & TFHD_DEFAULT_FLAGS) && buf_skip(&b, 4) < 0))
                return -EBADMSG;

        r = buf_find_box(traf, BOX('t', 'f', 'd', 't'), &b);
        if (r < 0)
                return r;
        if (r > 0) {
                if (buf_fullbox(&b, &version, &flags) < 0 || version > 1 || buf_get(&b, version ? 8 : 4, &v) < 0)
                        return -EBADMSG;
                *dts = (int64_t)(v > DTS_MAX ? DTS_MAX + 1 : v);
        }
        /* far from overflow even after FRAGMENT_SAMPLES_MAX of UINT32_MAX */
        if (*dts > DTS_MAX)
                return -EBADMSG;

        pos = d.base;
        pos_known = d.base_known;
        while ((r = buf_next_box(&it, &type, &b)) > 0) {
                if (type == BOX('t', 'r', 'u', 'n') && (r = parse_trun(b, &d, fp, dts, &pos, &pos_known, acc)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* tfhd said "no samples here" */
        if ((tfhd_flags & TFHD_DURATION_IS_EMPTY) && acc->samples != before)
                return -EBADMSG;
        return 0;
}

/* Fills f from moof for the video track; *dts as in parse_traf.  A moof
 * without a video traf is a fragment of 0 samples whose first_pts is the
 * video decode time reached so far. */
static int parse_moof(struct buf moof, const struct video_track *vt, const struct frag_place *fp, int64_t *dts,
                      struct fmp4_fragment *f)
{
        struct frag_acc acc = { 0 };
        struct buf b;
        uint32_t type;
        bool first_traf = true;
        int r;

        while ((r = buf_next_box(&moof, &type, &b)) > 0) {
                struct buf tfhd;
                uint32_t flags, id;
                unsigned version;

                if (type != BOX('t', 'r', 'a', 'f'))
                        continue;
                if (buf_find_box(b, BOX('t', 'f', 'h', 'd'), &tfhd) <= 0 ||
                    buf_fullbox(&tfhd, &version, &flags) < 0 || buf_u32(&tfhd, &id) < 0)
                        return -EBADMSG;
                if (id == vt->id && (r = parse_traf(b, vt, fp, first_traf, dts, &acc)) < 0)
                        return r;
                first_traf = false;
        }
        if (r < 0)
                return r;
        f->samples = acc.samples;
        f->duration = acc.duration;
        f->first_pts = acc.have_first ? acc.first_pts : *dts;
        return 0;
}

/* ---- top level ------------------------------------------------------------- */

struct walk {
        int fd;
        uint64_t file_size;
        struct video_track vt;
        int64_t dts;             /* decode time at the end of the last fragment */
        uint8_t *moof;           /* payload of the moof waiting for its mdat, or NULL */
        uint64_t moof_off;
        size_t moof_len;
};

static int read_at(int fd, void *dst, size_t n, uint64_t off)
{
        uint8_t *p = dst;

        while (n > 0) {
                ssize_t k = pread(fd, p, n, (off_t)off);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO; /* shorter than fstat said: shrunk under us */
                p += k;
                n -= (size_t)k;
                off += (uint64_t)k;
        }
        return 0;
}

/* Reads the box header at off: 0 with its type, header and total size; 1
 * if the file ends inside it (header or body); -EBADMSG; -errno. */
static int read_box_header(const struct walk *w, uint64_t off, uint32_t *type, uint64_t *hdr, uint64_t *size)
{
        uint64_t left = w->file_size - off;
        uint8_t h[16];
        int e;

        *type = 0;
        if (left < 8)
                return 1;
        e = read_at(w->fd, h, left < 16 ? (size_t)left : 16, off);
        if (e < 0)
                return e;
        *size = be(h, 4);
        *type = (uint32_t)be(h + 4, 4);
        *hdr = 8;
        if (*size == 0 && *type == 0)
                return 1; /* zeros where the file system lost the tail in a crash */
        if (*size == 1) {
                if (left < 16)
                        return 1;
                *size = be(h + 8, 8);
                *hdr = 16;
        } else if (*size == 0) {
                *size = left;
        }
        if (*size < *hdr)
                return -EBADMSG;
        return *size > left ? 1 : 0;
}

static int read_box(const struct walk *w, uint64_t off, uint64_t size, uint32_t max, uint8_t **out)
{
        uint8_t *p;
        int e;

        if (size > max)
                return -EBADMSG;
        p = malloc(size ? (size_t)size : 1);
        if (!p)
                return -ENOMEM;
        e = read_at(w->fd, p, (size_t)size, off);
        if (e < 0) {
                free(p);
                return e;
        }
        *out = p;
        return 0;
}

static int add_fragment(struct walk *w, struct fmp4_index *ix, uint64_t mdat_off, uint64_t mdat_hdr,
                        uint64_t mdat_size)
{
        const struct frag_place fp = {
                .moof_off = w->moof_off,
                .mdat_data = mdat_off + mdat_hdr,
                .mdat_end = mdat_off + mdat_size,
        };
        struct fmp4_fragment f = { .offset = w->moof_off, .size = fp.mdat_end - w->moof_off };
        size_t n = ix->n_frags;
        int e;

        if (n >= FRAGMENTS_MAX)
                return -EBADMSG;
        e = parse_moof((struct buf){ w->moof, w->moof_len }, &w->vt, &fp, &w->dts, &f);
        if (e < 0)
                return e;
        if (n > 0) {
                const struct fmp4_fragment *prev = &ix->frags[n - 1];

                if ((uint64_t)prev->first_sample + prev->samples + f.samples > UINT32_MAX)
                        return -EBADMSG;
                f.first_sample = prev->first_sample + prev->samples;
        }
        if (n == 0 || (n >= 16 && (n & (n - 1)) == 0)) { /* capacity 16, 32, 64, ... */
                struct fmp4_fragment *p = realloc(ix->frags, (n ? 2 * n : 16) * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                ix->frags = p;
        }
        ix->frags[ix->n_frags++] = f;
        return 0;
}

/* One top-level box at off.  The moov must come before the first moof and a
 * moof is a fragment once the next mdat is complete. */
static int walk_box(struct walk *w, struct fmp4_index *ix, uint64_t off, uint32_t type, uint64_t hdr,
                    uint64_t size)
{
        uint8_t *moov;
        int e;

        switch (type) {
        case BOX('m', 'o', 'o', 'v'):
                if (w->vt.found || ix->init_size)
                        return -EBADMSG;
                e = read_box(w, off + hdr, size - hdr, MOOV_MAX, &moov);
                if (e < 0)
                        return e;
                e = parse_moov((struct buf){ moov, (size_t)(size - hdr) }, &w->vt);
                free(moov);
                return e;
        case BOX('m', 'o', 'o', 'f'):
                if (!w->vt.found || w->moof)
                        return -EBADMSG;
                e = read_box(w, off + hdr, size - hdr, MOOF_MAX, &w->moof);
                if (e < 0)
                        return e;
                w->moof_off = off;
                w->moof_len = (size_t)(size - hdr);
                return 0;
        case BOX('m', 'd', 'a', 't'):
                if (!w->moof)
                        return 0; /* not one of ours; skipped like any other box */
                e = add_fragment(w, ix, off, hdr, size);
                free(w->moof);
                w->moof = NULL;
                return e;
        default:
                return 0;
        }
}

static int walk_file(struct walk *w, struct fmp4_index *ix)
{
        uint64_t off = 0;
        unsigned boxes = 0;

        while (off < w->file_size) {
                uint64_t hdr, size;
                uint32_t type;
                int e = read_box_header(w, off, &type, &hdr, &size);

                if (e < 0)
                        return e;
                if (e == 0 && off == 0 && type != BOX('f', 't', 'y', 'p'))
                        return -EBADMSG;
                if (e == 0 && ++boxes > TOP_BOXES_MAX)
                        return -EBADMSG;
                /* a moof cut short still ends the init section; init_size
                 * stays 0 until a moof is seen (ftyp is at offset 0) */
                if (type == BOX('m', 'o', 'o', 'f') && !ix->init_size)
                        ix->init_size = off;
                if (e == 1) {
                        ix->truncated = true;
                        break;
                }
                e = walk_box(w, ix, off, type, hdr, size);
                if (e < 0)
                        return e;
                off += size;
        }
        if (w->moof)
                ix->truncated = true; /* a moof whose mdat never came */
        if (!ix->init_size)
                ix->init_size = off;
        return w->vt.found ? 0 : -EBADMSG;
}

int fmp4_index_read(const char *path, struct fmp4_index *out)
{
        struct walk w = { .fd = -1 };
        struct stat st;
        int e;

        memset(out, 0, sizeof(*out));
        w.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (w.fd < 0)
                return -errno;
        if (fstat(w.fd, &st) < 0) {
                e = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                e = -EBADMSG;
                goto out;
        }
        w.file_size = (uint64_t)st.st_size;
        e = walk_file(&w, out);
        if (e == 0) {
                out->video_track_id = w.vt.id;
                out->timescale = w.vt.timescale;
        }
out:
        free(w.moof);
        close(w.fd);
        if (e < 0)
                fmp4_index_free(out);
        return e;
}

void fmp4_index_free(struct fmp4_index *ix)
{
        free(ix->frags);
        memset(ix, 0, sizeof(*ix));
}
