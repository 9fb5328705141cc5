/* frame_index: bit-packed per-frame index.  Encoder and decoder predict each
 * frame's offset (a grid of the nominal frame duration), keyframe flag (same
 * GOP as last time) and size (running mean of P-frames, last keyframe) with
 * the same fi_model, and only what the prediction missed costs more than a
 * few bits, in adaptive Rice codes.  The decoder trusts no count or length. */
#include "db/frame_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Blob: version byte, frame count (LEB128), bitstream, CRC-32 (IEEE, little
 * endian) of everything before it.  The bitstream, MSB first, zero-padded to
 * a byte:
 *   ctrl part, until it has described all n frames, repeats
 *     run     Rice(count of frames exactly as predicted)
 *     [local] 1 bit when the run's first frame follows a miss:
 *             0 = back on the grid (jitter), 1 = previous + duration (jump)
 *     then, unless the run reached frame n, one frame off prediction:
 *     on_time 1 bit; if set, the keyframe flag is the unpredicted one and a
 *             [local] bit follows after a miss; if clear: key bit, then
 *             Rice(zigzag(offset - grid) - 1)
 *   payload part, per frame: Rice(zigzag(size - predicted)) in the P or key
 *     context, then FI_HASH_BITS of hash.
 * A Rice(k) value is q = v >> k in unary (q ones, a zero) and the k low bits;
 * from FI_RICE_QMAX ones on, FI_LEN_BITS of bit length and the bits follow. */

#define FI_DEFAULT_FRAME_US 40000 /* 25 fps until the stream says otherwise */
#define FI_FRAME_MAX_US 10000000  /* a longer step is a jump, never a frame duration */
#define FI_REANCHOR_MISSES 3      /* consecutive misses before the grid moves: survives 2 jittered frames */
#define FI_P_MEAN_SHIFT 3         /* running mean of P sizes weighs the new frame 1/8 */
#define FI_KEY_TO_P_SHIFT 3       /* before any P-frame, guess it at 1/8 of the keyframe */
#define FI_RICE_QMAX 24           /* unary quotients below this, else an escape with the raw value */
#define FI_RICE_KMAX 40           /* keeps (quotient << k) inside 64 bits */
#define FI_RICE_HALVE_AT 32       /* statistics half-life, in coded values */
#define FI_RICE_ADD_MAX (UINT64_C(1) << 40) /* one outlier cannot poison the sum */
#define FI_LEN_BITS 7             /* bit length 1..64 of an escaped value */
#define FI_RICE_MAX_BITS (FI_RICE_QMAX + FI_LEN_BITS + 63)
#define FI_CTRL_MAX_BITS (2 * FI_RICE_MAX_BITS + 3) /* per added frame */
#define FI_PAYLOAD_MAX_BITS (FI_RICE_MAX_BITS + FI_HASH_BITS)
/* Lower bound per frame (a one-bit Rice size and the hash): bounds n before malloc. */
#define FI_FRAME_MIN_BITS (1 + FI_HASH_BITS)
#define FI_HEADER_MAX 4 /* version + LEB128 of FI_MAX_FRAMES (3 bytes) */
#define FI_CRC_BYTES 4

enum fi_time { FI_ON_GRID, FI_ON_LOCAL, FI_MISS };

/* ---- prediction model -------------------------------------------------------- */

static void model_init(struct fi_model *m)
{
        memset(m, 0, sizeof(*m));
        m->frame_us = FI_DEFAULT_FRAME_US;
        m->run_ctx = (struct fi_rice){ .sum = 16, .count = 1 };
        m->time_ctx = (struct fi_rice){ .sum = 1024, .count = 1 };
        m->p_ctx = (struct fi_rice){ .sum = 2048, .count = 1 };
        m->key_ctx = (struct fi_rice){ .sum = 32768, .count = 1 };
}

static bool model_key_predicted(const struct fi_model *m)
{
        if (!m->seen_key)
                return m->count == 0;
        return m->gop != 0 && m->since_key + 1 == m->gop;
}

static enum fi_time model_classify(const struct fi_model *m, uint64_t offset_us)
{
        if (offset_us == m->grid_us)
                return FI_ON_GRID;
        if (m->misses && offset_us == m->prev_us + m->frame_us)
                return FI_ON_LOCAL;
        return FI_MISS;
}

/* Advance the time and keyframe predictions past frame f, coded as t. */
static void model_update_ctrl(struct fi_model *m, const struct fi_frame *f, enum fi_time t)
{
        uint64_t step_us = f->offset_us - m->prev_us;

        if (t == FI_ON_GRID) {
                m->grid_us += m->frame_us;
                m->misses = 0;
        } else if (t == FI_ON_LOCAL || m->count == 0) {
                m->grid_us = f->offset_us + m->frame_us;
                m->misses = 0;
        } else if (m->count == 1 || m->misses + 1 >= FI_REANCHOR_MISSES) {
                /* the second frame tells the duration; persistent misses, a new rate */
                if (step_us > 0 && step_us <= FI_FRAME_MAX_US)
                        m->frame_us = step_us;
                m->grid_us = f->offset_us + m->frame_us;
                m->misses = 0;
        } else {
                m->grid_us += m->frame_us; /* keep the grid: jitter comes back to it */
                m->misses++;
        }
        m->prev_us = f->offset_us;

        if (f->key) {
                if (m->seen_key)
                        m->gop = m->since_key + 1;
                m->seen_key = true;
                m->since_key = 0;
        } else {
                m->since_key++;
        }
        m->count++;
}

static uint64_t model_size_predicted(const struct fi_model *m, bool key)
{
        if (key)
                return m->last_key_size;
        return m->p_seen ? m->p_mean8 >> FI_P_MEAN_SHIFT : m->last_key_size >> FI_KEY_TO_P_SHIFT;
}

/* A size predicted from nothing yet says nothing about later residuals. */
static bool model_size_informed(const struct fi_model *m, bool key)
{
        return key ? m->size_seen_key : m->p_seen != 0;
}

static void model_update_size(struct fi_model *m, const struct fi_frame *f)
{
        uint64_t n = m->p_seen;

        if (f->key) {
                m->last_key_size = f->size;
                m->size_seen_key = true;
        } else if (n < (1u << FI_P_MEAN_SHIFT)) { /* plain mean until the average is warm */
                m->p_mean8 = (m->p_mean8 * n + ((uint64_t)f->size << FI_P_MEAN_SHIFT)) / (n + 1);
                m->p_seen++;
        } else {
                m->p_mean8 = m->p_mean8 - (m->p_mean8 >> FI_P_MEAN_SHIFT) + f->size;
        }
}

static uint64_t zigzag(uint64_t u)
{
        return (u << 1) ^ (0 - (u >> 63));
}

static uint64_t unzigzag(uint64_t z)
{
        return (z >> 1) ^ (0 - (z & 1));
}

static unsigned rice_k(const struct fi_rice *c)
{
        unsigned k = 0;

        while (k < FI_RICE_KMAX && ((uint64_t)c->count << (k + 1)) < c->sum)
                k++;
        return k;
}

static void rice_update(struct fi_rice *c, uint64_t v)
{
        c->sum += v < FI_RICE_ADD_MAX ? v : FI_RICE_ADD_MAX;
        if (++c->count >= FI_RICE_HALVE_AT) {
                c->sum >>= 1;
                c->count >>= 1;
        }
}

static unsigned bit_length(uint64_t v)
{
        return v ? 64 - (unsigned)__builtin_clzll(v) : 0;
}

/* ---- bit writer ----------------------------------------------------------------- */

static int bits_reserve(struct fi_bits *b, size_t more_bits)
{
        size_t need = (b->len_bits + more_bits + 7) / 8;
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *p;

        if (need <= b->cap)
                return 0;
        while (cap < need)
                cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        memset(p + b->cap, 0, cap - b->cap);
        b->data = p;
        b->cap = cap;
        return 0;
}

/* Write the low n bits of v, MSB first, into space reserved by the caller. */
static void bits_put(struct fi_bits *b, uint64_t v, unsigned n)
{
        while (n--) {
                if ((v >> n) & 1)
                        b->data[b->len_bits >> 3] |= (uint8_t)(0x80u >> (b->len_bits & 7));
                b->len_bits++;
        }
}

static void bits_append(struct fi_bits *b, const struct fi_bits *src)
{
        size_t whole = src->len_bits / 8, rest = src->len_bits % 8;

        for (size_t i = 0; i < whole; i++)
                bits_put(b, src->data[i], 8);
        if (rest)
                bits_put(b, src->data[whole] >> (8 - rest), (unsigned)rest);
}

static void rice_put(struct fi_bits *b, const struct fi_rice *c, uint64_t v)
{
        unsigned k = rice_k(c);
        uint64_t q = v >> k;

        if (q < FI_RICE_QMAX) {
                bits_put(b, (UINT64_C(1) << (q + 1)) - 2, (unsigned)q + 1); /* q ones, a zero */
                bits_put(b, v, k);
        } else {
                unsigned len = bit_length(v); /* >= 1: v >= QMAX << k */
                bits_put(b, (UINT64_C(1) << FI_RICE_QMAX) - 1, FI_RICE_QMAX);
                bits_put(b, len, FI_LEN_BITS);
                bits_put(b, v, len - 1); /* the leading one is implied */
        }
}

static void bits_free(struct fi_bits *b)
{
        free(b->data);
        *b = (struct fi_bits){ 0 };
}

/* ---- encoder ------------------------------------------------------------------ */

void fi_encoder_init(struct fi_encoder *enc)
{
        memset(enc, 0, sizeof(*enc));
        model_init(&enc->model);
}

/* The pending run and, when its first frame follows a miss, that frame's bit. */
static void run_put(struct fi_encoder *enc, struct fi_bits *b)
{
        rice_put(b, &enc->model.run_ctx, enc->run);
        if (enc->run_has_local)
                bits_put(b, enc->run_local, 1);
}

static void ctrl_put(struct fi_encoder *enc, const struct fi_frame *f)
{
        struct fi_model *m = &enc->model;
        enum fi_time t = model_classify(m, f->offset_us);
        uint64_t v;

        if (t != FI_MISS && f->key == model_key_predicted(m)) {
                if (enc->run++ == 0) {
                        enc->run_has_local = m->misses != 0;
                        enc->run_local = t == FI_ON_LOCAL;
                }
        } else {
                run_put(enc, &enc->ctrl);
                rice_update(&m->run_ctx, enc->run);
                enc->run = 0;
                enc->run_has_local = false;
                bits_put(&enc->ctrl, t != FI_MISS, 1);
                if (t != FI_MISS && m->misses) {
                        bits_put(&enc->ctrl, t == FI_ON_LOCAL, 1);
                } else if (t == FI_MISS) {
                        bits_put(&enc->ctrl, f->key, 1);
                        v = zigzag(f->offset_us - m->grid_us) - 1;
                        rice_put(&enc->ctrl, &m->time_ctx, v);
                        rice_update(&m->time_ctx, v);
                }
        }
        model_update_ctrl(m, f, t);
}

static void payload_put(struct fi_encoder *enc, const struct fi_frame *f)
{
        struct fi_model *m = &enc->model;
        struct fi_rice *ctx = f->key ? &m->key_ctx : &m->p_ctx;
        uint64_t v = zigzag((uint64_t)f->size - model_size_predicted(m, f->key));

        rice_put(&enc->payload, ctx, v);
        if (model_size_informed(m, f->key))
                rice_update(ctx, v);
        bits_put(&enc->payload, f->hash, FI_HASH_BITS);
        model_update_size(m, f);
}

int fi_encoder_add(struct fi_encoder *enc, const struct fi_frame *f)
{
        int r;

        if (f->hash > FI_HASH_MASK)
                return -EINVAL;
        if (enc->n_frames >= FI_MAX_FRAMES)
                return -E2BIG;
        if ((r = bits_reserve(&enc->ctrl, FI_CTRL_MAX_BITS)) < 0 ||
            (r = bits_reserve(&enc->payload, FI_PAYLOAD_MAX_BITS)) < 0)
                return r;
        /* nothing below can fail */
        ctrl_put(enc, f);
        payload_put(enc, f);
        enc->n_frames++;
        return 0;
}

static uint32_t crc32_le(const uint8_t *p, size_t n)
{
        uint32_t crc = 0xffffffffu;

        while (n--) {
                crc ^= *p++;
                for (int i = 0; i < 8; i++)
                        crc = (crc >> 1) ^ (0xedb88320u & (0 - (crc & 1)));
        }
        return ~crc;
}

int fi_encoder_data(struct fi_encoder *enc, const uint8_t **data, size_t *len)
{
        struct fi_bits *out = &enc->out;
        size_t n = enc->n_frames, nbytes;
        uint32_t crc;
        int r;

        out->len_bits = 0;
        if (out->data)
                memset(out->data, 0, out->cap);
        if ((r = bits_reserve(out, 8 * (FI_HEADER_MAX + FI_CRC_BYTES) + FI_RICE_MAX_BITS + 1 +
                                           enc->ctrl.len_bits + enc->payload.len_bits)) < 0)
                return r;
        bits_put(out, FI_FORMAT_VERSION, 8);
        do {
                bits_put(out, (n & 0x7f) | (n > 0x7f ? 0x80 : 0), 8);
                n >>= 7;
        } while (n);
        bits_append(out, &enc->ctrl);
        if (enc->run)
                run_put(enc, out); /* the last run reaches the last frame */
        bits_append(out, &enc->payload);
        nbytes = (out->len_bits + 7) / 8;
        crc = crc32_le(out->data, nbytes);
        for (int i = 0; i < FI_CRC_BYTES; i++)
                out->data[nbytes + (size_t)i] = (uint8_t)(crc >> (8 * i));
        *data = out->data;
        *len = nbytes + FI_CRC_BYTES;
        return 0;
}

void fi_encoder_free(struct fi_encoder *enc)
{
        bits_free(&enc->ctrl);
        bits_free(&enc->payload);
        bits_free(&enc->out);
        memset(enc, 0, sizeof(*enc));
}

/* ---- decoder ------------------------------------------------------------------ */

struct bit_reader {
        const uint8_t *p;
        size_t len_bits;
        size_t pos;
};

static int bits_get(struct bit_reader *br, unsigned n, uint64_t *v)
{
        uint64_t x = 0;

        if (n > br->len_bits - br->pos)
                return -EBADMSG;
        while (n--) {
                x = (x << 1) | ((br->p[br->pos >> 3] >> (7 - (br->pos & 7))) & 1);
                br->pos++;
        }
        *v = x;
        return 0;
}

static int flag_get(struct bit_reader *br, bool *b)
{
        uint64_t v = 0;
        int r = bits_get(br, 1, &v);

        *b = v;
        return r;
}

static int rice_get(struct bit_reader *br, const struct fi_rice *c, uint64_t *v)
{
        unsigned k = rice_k(c);
        uint64_t q = 0, bit = 1, low;
        int r;

        while (q < FI_RICE_QMAX) {
                if ((r = bits_get(br, 1, &bit)) < 0)
                        return r;
                if (!bit)
                        break;
                q++;
        }
        if (q < FI_RICE_QMAX) {
                if ((r = bits_get(br, k, &low)) < 0)
                        return r;
                *v = (q << k) | low;
                return 0;
        }
        if ((r = bits_get(br, FI_LEN_BITS, &q)) < 0)
                return r;
        if (q < 1 || q > 64 || (r = bits_get(br, (unsigned)q - 1, &low)) < 0)
                return -EBADMSG;
        *v = (UINT64_C(1) << (q - 1)) | low;
        if ((*v >> k) < FI_RICE_QMAX)
                return -EBADMSG; /* the encoder never escapes a short value */
        return 0;
}

/* A frame on time, with keyframe flag key; after a miss, a bit says which
 * prediction of the time. */
static int on_time_get(struct bit_reader *br, struct fi_model *m, struct fi_frame *f, bool key)
{
        bool local = false;
        int r;

        if (m->misses && (r = flag_get(br, &local)) < 0)
                return r;
        f->offset_us = local ? m->prev_us + m->frame_us : m->grid_us;
        f->key = key;
        model_update_ctrl(m, f, local ? FI_ON_LOCAL : FI_ON_GRID);
        return 0;
}

static int irregular_get(struct bit_reader *br, struct fi_model *m, struct fi_frame *f)
{
        bool on_time;
        uint64_t v;
        int r;

        if ((r = flag_get(br, &on_time)) < 0)
                return r;
        if (on_time) /* so the keyframe flag was the surprise */
                return on_time_get(br, m, f, !model_key_predicted(m));
        if ((r = flag_get(br, &f->key)) < 0 || (r = rice_get(br, &m->time_ctx, &v)) < 0)
                return r;
        rice_update(&m->time_ctx, v);
        if (v == UINT64_MAX)
                return -EBADMSG;
        f->offset_us = m->grid_us + unzigzag(v + 1);
        if (model_classify(m, f->offset_us) != FI_MISS)
                return -EBADMSG; /* the encoder would have said on time */
        model_update_ctrl(m, f, FI_MISS);
        return 0;
}

static int ctrl_get(struct bit_reader *br, struct fi_model *m, struct fi_frame *f, size_t n)
{
        size_t i = 0;
        uint64_t run;
        int r;

        while (i < n) {
                if ((r = rice_get(br, &m->run_ctx, &run)) < 0)
                        return r;
                rice_update(&m->run_ctx, run);
                if (run > n - i)
                        return -EBADMSG;
                for (uint64_t j = 0; j < run; j++, i++)
                        if ((r = on_time_get(br, m, &f[i], model_key_predicted(m))) < 0)
                                return r;
                if (i < n && (r = irregular_get(br, m, &f[i++])) < 0)
                        return r;
        }
        return 0;
}

static int payload_get(struct bit_reader *br, struct fi_model *m, struct fi_frame *f, size_t n)
{
        uint64_t v, size;
        int r;

        for (size_t i = 0; i < n; i++) {
                struct fi_rice *ctx = f[i].key ? &m->key_ctx : &m->p_ctx;
                if ((r = rice_get(br, ctx, &v)) < 0)
                        return r;
                if (model_size_informed(m, f[i].key))
                        rice_update(ctx, v);
                size = model_size_predicted(m, f[i].key) + unzigzag(v);
                if (size > UINT32_MAX)
                        return -EBADMSG;
                f[i].size = (uint32_t)size;
                if ((r = bits_get(br, FI_HASH_BITS, &v)) < 0)
                        return r;
                f[i].hash = (uint32_t)v;
                model_update_size(m, &f[i]);
        }
        return 0;
}

static int header_get(const uint8_t *blob, size_t len, size_t *n, size_t *hdr)
{
        size_t pos = 1, count = 0;
        unsigned shift = 0;

        if (len < 2 + FI_CRC_BYTES || blob[0] != FI_FORMAT_VERSION)
                return -EBADMSG;
        for (;;) {
                uint8_t b;
                if (pos >= len - FI_CRC_BYTES || pos >= FI_HEADER_MAX)
                        return -EBADMSG;
                b = blob[pos++];
                count |= (size_t)(b & 0x7f) << shift;
                shift += 7;
                if (!(b & 0x80)) {
                        if (b == 0 && pos > 2)
                                return -EBADMSG; /* over-long encoding */
                        break;
                }
        }
        if (count > FI_MAX_FRAMES)
                return -EBADMSG;
        *n = count;
        *hdr = pos;
        return 0;
}

int fi_decode(const uint8_t *blob, size_t len, struct fi_frame **frames, size_t *n)
{
        struct fi_model m;
        struct bit_reader br;
        struct fi_frame *out = NULL;
        size_t count, hdr, payload;
        uint64_t pad;
        uint32_t crc = 0;
        int r;

        *frames = NULL;
        *n = 0;
        if (!blob || header_get(blob, len, &count, &hdr) < 0)
                return -EBADMSG;
        payload = len - hdr - FI_CRC_BYTES;
        if (payload > SIZE_MAX / 8 || count * FI_FRAME_MIN_BITS > payload * 8)
                return -EBADMSG;
        br = (struct bit_reader){ .p = blob + hdr, .len_bits = payload * 8 };
        if (count && !(out = calloc(count, sizeof(*out))))
                return -ENOMEM;
        model_init(&m);
        if ((r = ctrl_get(&br, &m, out, count)) < 0 || (r = payload_get(&br, &m, out, count)) < 0)
                goto fail;
        /* exactly the padding of the last byte is left, and it is zero */
        r = -EBADMSG;
        if (br.len_bits - br.pos >= 8 || bits_get(&br, (unsigned)(br.len_bits - br.pos), &pad) < 0 || pad)
                goto fail;
        for (int i = 0; i < FI_CRC_BYTES; i++)
                crc |= (uint32_t)blob[len - FI_CRC_BYTES + i] << (8 * i);
        if (crc != crc32_le(blob, len - FI_CRC_BYTES))
                goto fail;
        *frames = out;
        *n = count;
        return 0;
fail:
        free(out);
        return r;
}

uint32_t fi_hash_truncate(uint64_t h)
{
        h ^= h >> 32;
        h *= UINT64_C(0x9e3779b97f4a7c15); /* Fibonacci hashing: the top bits depend on all bits */
        return (uint32_t)(h >> (64 - FI_HASH_BITS));
}
