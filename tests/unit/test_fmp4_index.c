/* Unit tests of common/fmp4_index.c on files built here box by box: the
 * fragments' byte ranges, sample counts, first pts and durations, and the
 * cut-short, 64-bit, garbage and missing cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fmp4_index.h"

#define TFHD_BASE_DATA_OFFSET 0x000001
#define TFHD_DEFAULT_DURATION 0x000008
#define TFHD_DEFAULT_SIZE 0x000010
#define TFHD_DEFAULT_FLAGS 0x000020
#define TFHD_DEFAULT_BASE_IS_MOOF 0x020000
#define TRUN_DATA_OFFSET 0x000001
#define TRUN_FIRST_SAMPLE_FLAGS 0x000004
#define TRUN_SAMPLE_DURATION 0x000100
#define TRUN_SAMPLE_SIZE 0x000200
#define TRUN_SAMPLE_FLAGS 0x000400
#define TRUN_SAMPLE_CTS 0x000800

/* A file being built: bytes and the open boxes' start offsets. */
struct out {
        uint8_t b[16384];
        size_t n;
        size_t open[8];
        int depth;
};

/* Big-endian, 1 to 8 bytes. */
static void put(struct out *o, uint64_t v, int bytes)
{
        assert_true(bytes <= 8 && o->n + (size_t)bytes <= sizeof(o->b));
        for (int i = bytes - 1; i >= 0; i--)
                o->b[o->n++] = (uint8_t)(v >> (8 * i));
}

static void put_zeros(struct out *o, size_t n)
{
        assert_true(o->n + n <= sizeof(o->b));
        memset(o->b + o->n, 0, n);
        o->n += n;
}

static void put_type(struct out *o, const char *type)
{
        assert_true(o->n + 4 <= sizeof(o->b));
        memcpy(o->b + o->n, type, 4);
        o->n += 4;
}

static void patch32(struct out *o, size_t at, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                o->b[at + (size_t)i] = (uint8_t)(v >> (24 - 8 * i));
}

static void box_open(struct out *o, const char *type)
{
        o->open[o->depth++] = o->n;
        put(o, 0, 4);
        put_type(o, type);
}

static void fullbox_open(struct out *o, const char *type, unsigned version, uint32_t flags)
{
        box_open(o, type);
        put(o, (uint64_t)version << 24 | flags, 4);
}

static void box_close(struct out *o)
{
        size_t start = o->open[--o->depth];

        patch32(o, start, (uint32_t)(o->n - start));
}

static void put_ftyp(struct out *o)
{
        box_open(o, "ftyp");
        put_type(o, "iso6");
        put(o, 512, 4);
        put_type(o, "iso6");
        box_close(o);
}

struct track {
        const char *handler;
        uint32_t id, timescale;
        unsigned version;        /* of tkhd and mdhd */
        uint32_t trex_duration, trex_size;
};

static void put_trak(struct out *o, const struct track *t)
{
        box_open(o, "trak");
        fullbox_open(o, "tkhd", t->version, 3);
        put_zeros(o, t->version ? 16 : 8); /* creation, modification */
        put(o, t->id, 4);
        put(o, 0, 4);
        put(o, 0, t->version ? 8 : 4); /* duration */
        put_zeros(o, 60);
        box_close(o);
        box_open(o, "mdia");
        fullbox_open(o, "mdhd", t->version, 0);
        put_zeros(o, t->version ? 16 : 8);
        put(o, t->timescale, 4);
        put(o, 0, t->version ? 8 : 4);
        put(o, 0x55c40000, 4); /* language, pre_defined */
        box_close(o);
        fullbox_open(o, "hdlr", 0, 0);
        put(o, 0, 4);
        put_type(o, t->handler);
        put_zeros(o, 12 + 1); /* reserved, empty name */
        box_close(o);
        box_close(o);
        box_close(o);
}

static void put_moov(struct out *o, const struct track *tracks, int n)
{
        box_open(o, "moov");
        fullbox_open(o, "mvhd", 0, 0);
        put_zeros(o, 96);
        box_close(o);
        for (int i = 0; i < n; i++)
                put_trak(o, &tracks[i]);
        box_open(o, "mvex");
        for (int i = 0; i < n; i++) {
                fullbox_open(o, "trex", 0, 0);
                put(o, tracks[i].id, 4);
                put(o, 1, 4);
                put(o, tracks[i].trex_duration, 4);
                put(o, tracks[i].trex_size, 4);
                put(o, 0, 4);
                box_close(o);
        }
        box_close(o);
        box_close(o);
}

struct sample {
        uint32_t duration, size;
        int32_t cts;
};

struct traf {
        uint32_t track_id;
        uint32_t tfhd_flags, default_duration, default_size;
        int tfdt_version; /* -1: no tfdt */
        uint64_t tfdt;
        unsigned trun_version;
        uint32_t trun_flags;
        const struct sample *s;
        uint32_t n;
};

static uint64_t traf_bytes(const struct traf *t)
{
        uint64_t bytes = 0;

        for (uint32_t i = 0; i < t->n; i++)
                bytes += (t->trun_flags & TRUN_SAMPLE_SIZE) ? t->s[i].size : t->default_size;
        return bytes;
}

/* moof with the trafs in order, then their data in one mdat (a 64-bit
 * header when large_mdat).  Data offsets are counted from the moof. */
static void put_fragment(struct out *o, const struct traf *trafs, int n, bool large_mdat)
{
        size_t moof = o->n, data_offset_at[4];
        uint64_t data = 0;

        box_open(o, "moof");
        fullbox_open(o, "mfhd", 0, 0);
        put(o, 1, 4);
        box_close(o);
        for (int k = 0; k < n; k++) {
                const struct traf *t = &trafs[k];

                box_open(o, "traf");
                fullbox_open(o, "tfhd", 0, t->tfhd_flags);
                put(o, t->track_id, 4);
                if (t->tfhd_flags & TFHD_DEFAULT_DURATION)
                        put(o, t->default_duration, 4);
                if (t->tfhd_flags & TFHD_DEFAULT_SIZE)
                        put(o, t->default_size, 4);
                if (t->tfhd_flags & TFHD_DEFAULT_FLAGS)
                        put(o, 0x01010000, 4);
                box_close(o);
                if (t->tfdt_version >= 0) {
                        fullbox_open(o, "tfdt", (unsigned)t->tfdt_version, 0);
                        put(o, t->tfdt, t->tfdt_version ? 8 : 4);
                        box_close(o);
                }
                fullbox_open(o, "trun", t->trun_version, t->trun_flags);
                put(o, t->n, 4);
                data_offset_at[k] = o->n;
                if (t->trun_flags & TRUN_DATA_OFFSET)
                        put(o, 0, 4);
                if (t->trun_flags & TRUN_FIRST_SAMPLE_FLAGS)
                        put(o, 0x02000000, 4);
                for (uint32_t i = 0; i < t->n; i++) {
                        if (t->trun_flags & TRUN_SAMPLE_DURATION)
                                put(o, t->s[i].duration, 4);
                        if (t->trun_flags & TRUN_SAMPLE_SIZE)
                                put(o, t->s[i].size, 4);
                        if (t->trun_flags & TRUN_SAMPLE_FLAGS)
                                put(o, 0x01010000, 4);
                        if (t->trun_flags & TRUN_SAMPLE_CTS)
                                put(o, (uint32_t)t->s[i].cts, 4);
                }
                box_close(o);
                box_close(o);
        }
        box_close(o);

        for (int k = 0; k < n; k++)
                data += traf_bytes(&trafs[k]);
        if (large_mdat) {
                put(o, 1, 4);
                put_type(o, "mdat");
                put(o, 16 + data, 8);
        } else {
                put(o, 8 + data, 4);
                put_type(o, "mdat");
        }
        for (int k = 0; k < n; k++) {
                if (trafs[k].trun_flags & TRUN_DATA_OFFSET)
                        patch32(o, data_offset_at[k], (uint32_t)(o->n - moof));
                for (uint64_t i = traf_bytes(&trafs[k]); i > 0; i--)
                        put(o, 0xa5, 1);
        }
}

static const struct track video_90k = {
        .handler = "vide", .id = 1, .timescale = 90000, .version = 1, .trex_duration = 3600, .trex_size = 10,
};
static const struct track audio_48k = {
        .handler = "soun", .id = 2, .timescale = 48000, .trex_duration = 1024, .trex_size = 4,
};

#define EXPLICIT (TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS | TRUN_SAMPLE_CTS)

struct fixture {
        char dir[64];
        char path[96];
};

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));

        if (!fx)
                return -1;
        strcpy(fx->dir, "/tmp/test_fmp4_index.XXXXXX");
        if (!mkdtemp(fx->dir)) {
                free(fx);
                return -1;
        }
        snprintf(fx->path, sizeof(fx->path), "%s/seg.mp4", fx->dir);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        unlink(fx->path);
        rmdir(fx->dir);
        free(fx);
        return 0;
}

static void write_file(const struct fixture *fx, const void *p, size_t n)
{
        FILE *f = fopen(fx->path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

static const struct sample frag1[] = {
        { 3000, 100, 6000 }, { 3000, 50, 12000 }, { 3000, 40, 3000 }, { 3000, 60, 6000 },
};
/* version 1: signed offsets, as libavformat writes with negative_cts_offsets */
static const struct sample frag2[] = { { 3000, 90, -3000 }, { 3600, 30, 6000 }, { 2400, 20, 0 } };
static const struct sample audio[] = { { 1024, 7, 0 }, { 1024, 8, 0 } };

/* ftyp, moov (audio track first, video second), 2 fragments with an audio
 * traf ahead of the video one; the offsets of the two moofs. */
static void build_two_fragments(struct out *o, bool large_mdat, size_t *first, size_t *second)
{
        const struct track tracks[] = { audio_48k, video_90k };
        struct traf t[2] = {
                { .track_id = 2, .tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF, .tfdt_version = 1,
                  .trun_flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE, .s = audio, .n = 2 },
                { .track_id = 1, .tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF, .tfdt_version = 1, .tfdt = 90000,
                  .trun_flags = EXPLICIT, .s = frag1, .n = 4 },
        };
        put_ftyp(o);
        put_moov(o, tracks, 2);
        *first = o->n;
        put_fragment(o, t, 2, false);
        *second = o->n;
        t[1].tfdt = 90000 + 12000;
        t[1].trun_version = 1;
        t[1].s = frag2;
        t[1].n = 3;
        put_fragment(o, t, 2, large_mdat);
}

static size_t box_size(const struct out *o, size_t at)
{
        return (size_t)o->b[at] << 24 | (size_t)o->b[at + 1] << 16 | (size_t)o->b[at + 2] << 8 | o->b[at + 3];
}

/* The trun of the video traf of the fragment at moof. */
static size_t video_trun(const struct out *o, size_t moof)
{
        size_t at = moof;

        for (int found = 0; found < 2; at++)
                if (memcmp(o->b + at, "trun", 4) == 0 && ++found == 2)
                        break;
        return at - 4;
}

static void test_two_fragments_explicit_samples(void **state)
{
        struct fixture *fx = *state;
        struct out o = { 0 };
        struct fmp4_index ix;
        size_t init, second;

        build_two_fragments(&o, false, &init, &second);
        write_file(fx, o.b, o.n);

        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.init_size, init);
        assert_int_equal(ix.video_track_id, 1);
        assert_int_equal(ix.timescale, 90000);
        assert_false(ix.truncated);
        assert_int_equal(ix.n_frags, 2);

        assert_int_equal(ix.frags[0].offset, init);
        assert_int_equal(ix.frags[0].size, second - init);
        assert_int_equal(ix.frags[0].first_sample, 0);
        assert_int_equal(ix.frags[0].samples, 4);
        assert_int_equal(ix.frags[0].first_pts, 90000 + 6000);
        assert_int_equal(ix.frags[0].duration, 12000);

        assert_int_equal(ix.frags[1].offset, second);
        assert_int_equal(ix.frags[1].size, o.n - second);
        assert_int_equal(ix.frags[1].first_sample, 4);
        assert_int_equal(ix.frags[1].samples, 3);
        assert_int_equal(ix.frags[1].first_pts, 102000 - 3000);
        assert_int_equal(ix.frags[1].duration, 9000);
        fmp4_index_free(&ix);
        assert_null(ix.frags);
}

/* Durations and sizes from tfhd when it has them, else from trex; tfdt and
 * the headers in their 32-bit versions; no tfdt: decode time carries on. */
static void test_defaults_from_tfhd_and_trex(void **state)
{
        static const struct sample s[5] = { { 0 } };
        struct fixture *fx = *state;
        struct track v = video_90k;
        struct out o = { 0 };
        struct fmp4_index ix;
        struct traf t = {
                .track_id = 1, .tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_FLAGS, .tfdt_version = 0,
                .tfdt = 1000, .trun_flags = TRUN_DATA_OFFSET | TRUN_FIRST_SAMPLE_FLAGS, .s = s, .n = 5,
                .default_size = 10, /* not in tfhd: only sizes the mdat, as trex says */
        };

        v.version = 0;
        put_ftyp(&o);
        put_moov(&o, &v, 1);
        put_fragment(&o, &t, 1, false);           /* trex: 3600 each, 10 bytes each */
        t.tfhd_flags |= TFHD_DEFAULT_DURATION | TFHD_DEFAULT_SIZE;
        t.default_duration = 1800;
        t.default_size = 3;
        t.tfdt = 1000 + 5 * 3600;
        t.n = 4;
        put_fragment(&o, &t, 1, false);           /* tfhd: 1800 each, 3 bytes each */
        t.tfdt_version = -1;
        t.tfhd_flags = 0;                         /* first traf: base is the moof */
        t.default_size = 10;
        t.n = 2;
        put_fragment(&o, &t, 1, false);           /* no tfdt, trex again */
        write_file(fx, o.b, o.n);

        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.n_frags, 3);
        assert_int_equal(ix.frags[0].samples, 5);
        assert_int_equal(ix.frags[0].first_pts, 1000);
        assert_int_equal(ix.frags[0].duration, 5 * 3600);
        assert_int_equal(ix.frags[1].first_sample, 5);
        assert_int_equal(ix.frags[1].samples, 4);
        assert_int_equal(ix.frags[1].first_pts, 1000 + 5 * 3600);
        assert_int_equal(ix.frags[1].duration, 4 * 1800);
        assert_int_equal(ix.frags[2].first_sample, 9);
        assert_int_equal(ix.frags[2].first_pts, 1000 + 5 * 3600 + 4 * 1800);
        assert_int_equal(ix.frags[2].duration, 2 * 3600);
        assert_int_equal(ix.frags[2].offset + ix.frags[2].size, o.n);
        fmp4_index_free(&ix);
}

/* A crash leaves the last fragment cut anywhere: in its mdat, right after
 * its moof, inside its moof's header, or as zeros. */
static void test_truncated_last_fragment(void **state)
{
        struct fixture *fx = *state;
        struct out o = { 0 };
        struct fmp4_index ix;
        size_t first, second;

        build_two_fragments(&o, false, &first, &second);
        size_t mdat = second + box_size(&o, second);
        const size_t cuts[] = { o.n - 1, o.n - 20, second + 3, second + 8, second + 100, mdat, mdat + 4 };

        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                write_file(fx, o.b, cuts[i]);
                assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
                assert_int_equal(ix.n_frags, 1);
                assert_true(ix.truncated);
                assert_int_equal(ix.frags[0].offset + ix.frags[0].size, second);
                fmp4_index_free(&ix);
        }

        memset(o.b + second, 0, o.n - second);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.n_frags, 1);
        assert_true(ix.truncated);
        fmp4_index_free(&ix);

        /* cut inside the first moof: the init section, no fragment */
        write_file(fx, o.b, first + 20);
        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.init_size, first);
        assert_int_equal(ix.n_frags, 0);
        assert_true(ix.truncated);
        fmp4_index_free(&ix);

        /* cut inside the moov: nothing to index */
        write_file(fx, o.b, first - 20);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);
}

/* A 64-bit mdat, then a last mdat of size 0 ("to the end of the file"). */
static void test_64bit_and_to_eof_sizes(void **state)
{
        struct fixture *fx = *state;
        struct out o = { 0 };
        struct fmp4_index ix;
        size_t first, second, mdat;

        build_two_fragments(&o, true, &first, &second);

        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.n_frags, 2);
        assert_false(ix.truncated);
        assert_int_equal(ix.frags[1].offset, second);
        assert_int_equal(ix.frags[1].size, o.n - second);
        assert_int_equal(ix.frags[1].samples, 3);
        fmp4_index_free(&ix);

        o.n = 0;
        build_two_fragments(&o, false, &first, &second);
        mdat = second + box_size(&o, second);
        patch32(&o, mdat, 0);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), 0);
        assert_int_equal(ix.n_frags, 2);
        assert_false(ix.truncated);
        assert_int_equal(ix.frags[1].size, o.n - second);
        fmp4_index_free(&ix);
}

static void test_malformed_is_ebadmsg(void **state)
{
        struct fixture *fx = *state;
        struct out o = { 0 };
        struct fmp4_index ix;
        uint8_t garbage[4096];
        size_t first, second, trun;

        srand(7);
        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (uint8_t)rand();
        write_file(fx, garbage, sizeof(garbage));
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);
        assert_null(ix.frags);

        write_file(fx, "", 0);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);

        /* a sample count the trun has no room for */
        build_two_fragments(&o, false, &first, &second);
        trun = video_trun(&o, second);
        patch32(&o, trun + 12, 1000000);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);

        /* samples whose data runs past their mdat */
        o.n = 0;
        build_two_fragments(&o, false, &first, &second);
        patch32(&o, trun + 16, 60000);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);

        /* a box smaller than its own header, inside the moof */
        o.n = 0;
        build_two_fragments(&o, false, &first, &second);
        patch32(&o, trun, 5);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);

        /* a top-level box smaller than its own header */
        o.n = 0;
        build_two_fragments(&o, false, &first, &second);
        put(&o, 4, 4);
        put_type(&o, "free");
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);

        /* not fragmented: no mvex */
        o.n = 0;
        put_ftyp(&o);
        box_open(&o, "moov");
        put_trak(&o, &video_90k);
        box_close(&o);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);
}

static void test_missing_file(void **state)
{
        struct fixture *fx = *state;
        struct fmp4_index ix;

        assert_int_equal(fmp4_index_read(fx->path, &ix), -ENOENT);
        assert_int_equal(ix.n_frags, 0);
}

static void test_no_video_track(void **state)
{
        struct fixture *fx = *state;
        struct out o = { 0 };
        struct fmp4_index ix;
        const struct traf t = {
                .track_id = 2, .tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF, .tfdt_version = 1,
                .trun_flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE, .s = audio, .n = 2,
        };

        put_ftyp(&o);
        put_moov(&o, &audio_48k, 1);
        put_fragment(&o, &t, 1, false);
        write_file(fx, o.b, o.n);
        assert_int_equal(fmp4_index_read(fx->path, &ix), -EBADMSG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_two_fragments_explicit_samples, setup, teardown),
                cmocka_unit_test_setup_teardown(test_defaults_from_tfhd_and_trex, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated_last_fragment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_64bit_and_to_eof_sizes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_is_ebadmsg, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_video_track, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
