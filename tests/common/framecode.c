/* framecode: paint and read the frame number grid, build and parse the camsim
 * SEI.  Pure functions over caller-owned buffers; see framecode.h. */
#include "framecode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cell whose mean luma is this close to the threshold is ambiguous. */
#define AMBIGUOUS_MARGIN 40

int framecode_geometry(int width, int height, struct framecode_geom *g)
{
        int cell = (width / FRAMECODE_COLS) & ~1;

        if (cell < FRAMECODE_MIN_CELL_PX || cell * FRAMECODE_ROWS > height)
                return -EINVAL;
        g->cell_px = cell;
        g->width_px = cell * FRAMECODE_COLS;
        g->height_px = cell * FRAMECODE_ROWS;
        return 0;
}

uint16_t framecode_check(uint32_t n)
{
        /* A non-linear mix: a decoder concealing a lost reference applies one
         * frame's cell changes to another frame's grid; with a linear check
         * (XOR fold, CRC) such a blend would carry a valid check. */
        uint32_t h = n * 0x9e3779b1u;

        h ^= h >> 15;
        h *= 0x85ebca77u;
        h ^= h >> 13;
        h *= 0xc2b2ae3du;
        h ^= h >> 16;
        return (uint16_t)h;
}

static int cell_bit(uint32_t n, uint16_t check, int row, int col)
{
        if (row < 2)
                return (n >> (31 - (row * FRAMECODE_COLS + col))) & 1;
        return (check >> (15 - col)) & 1;
}

void framecode_paint(uint8_t *luma, int stride, const struct framecode_geom *g, uint32_t n)
{
        uint16_t check = framecode_check(n);

        for (int row = 0; row < FRAMECODE_ROWS; row++)
                for (int col = 0; col < FRAMECODE_COLS; col++) {
                        uint8_t v = cell_bit(n, check, row, col) ? FRAMECODE_Y_WHITE : FRAMECODE_Y_BLACK;
                        for (int y = 0; y < g->cell_px; y++)
                                memset(luma + (size_t)(row * g->cell_px + y) * stride + col * g->cell_px, v,
                                       g->cell_px);
                }
}

/* Mean luma of the inner half of a cell: edges blur under compression. */
static int cell_mean(const uint8_t *luma, int stride, const struct framecode_geom *g, int row, int col)
{
        int q = g->cell_px / 4, side = g->cell_px / 2;
        long sum = 0;

        for (int y = 0; y < side; y++) {
                const uint8_t *p = luma + (size_t)(row * g->cell_px + q + y) * stride + col * g->cell_px + q;
                for (int x = 0; x < side; x++)
                        sum += p[x];
        }
        return (int)(sum / (side * side));
}

int framecode_read(const uint8_t *luma, int stride, const struct framecode_geom *g, uint32_t *n)
{
        uint32_t num = 0;
        uint16_t check = 0;

        for (int row = 0; row < FRAMECODE_ROWS; row++)
                for (int col = 0; col < FRAMECODE_COLS; col++) {
                        int m = cell_mean(luma, stride, g, row, col);
                        int bit;

                        if (m > FRAMECODE_Y_THRESHOLD - AMBIGUOUS_MARGIN &&
                            m < FRAMECODE_Y_THRESHOLD + AMBIGUOUS_MARGIN)
                                return -EBADMSG;
                        bit = m >= FRAMECODE_Y_THRESHOLD;
                        if (row < 2)
                                num = (num << 1) | (uint32_t)bit;
                        else
                                check = (uint16_t)((check << 1) | bit);
                }
        if (check != framecode_check(num))
                return -EBADMSG;
        *n = num;
        return 0;
}

/* The SEI NAL of either codec: the SEI message is the same, only the NAL
 * header differs (H.264: one byte, type 6; H.265: two, PREFIX_SEI 39). */
static int sei_build(uint8_t *out, size_t cap, const uint8_t *hdr, size_t hdr_len, const char *camera_id,
                     uint32_t n)
{
        uint8_t rbsp[FRAMECODE_SEI_MAX];
        size_t len = 0, o = 0;
        int zeros = 0;
        char text[FRAMECODE_CAMERA_ID_MAX + 24];
        int tl;

        if (!camera_id || strlen(camera_id) >= FRAMECODE_CAMERA_ID_MAX)
                return -EINVAL;
        tl = snprintf(text, sizeof(text), "cam=%s;n=%u", camera_id, n);
        rbsp[len++] = 5; /* payloadType: user_data_unregistered */
        rbsp[len++] = (uint8_t)(FRAMECODE_SEI_UUID_LEN + tl); /* < 255: one byte */
        memcpy(rbsp + len, FRAMECODE_SEI_UUID, FRAMECODE_SEI_UUID_LEN);
        len += FRAMECODE_SEI_UUID_LEN;
        memcpy(rbsp + len, text, (size_t)tl);
        len += (size_t)tl;
        rbsp[len++] = 0x80; /* rbsp_trailing_bits */

        if (cap < 4 + hdr_len + 2 * len)
                return -ENOBUFS;
        memcpy(out, "\0\0\0\1", 4);
        memcpy(out + 4, hdr, hdr_len);
        o = 4 + hdr_len;
        for (size_t i = 0; i < len; i++) {
                if (zeros >= 2 && rbsp[i] <= 3) {
                        out[o++] = 3; /* emulation prevention */
                        zeros = 0;
                }
                out[o++] = rbsp[i];
                zeros = rbsp[i] == 0 ? zeros + 1 : 0;
        }
        return (int)o;
}

int framecode_sei_build(uint8_t *out, size_t cap, const char *camera_id, uint32_t n)
{
        static const uint8_t hdr[] = { 0x06 };

        return sei_build(out, cap, hdr, sizeof(hdr), camera_id, n);
}

int framecode_sei_build_hevc(uint8_t *out, size_t cap, const char *camera_id, uint32_t n)
{
        static const uint8_t hdr[] = { 39 << 1, 0x01 }; /* PREFIX_SEI_NUT, layer 0, tid 1 */

        return sei_build(out, cap, hdr, sizeof(hdr), camera_id, n);
}

int framecode_sei_parse(const uint8_t *payload, size_t len, char camera_id[FRAMECODE_CAMERA_ID_MAX],
                        uint32_t *n)
{
        char text[FRAMECODE_CAMERA_ID_MAX + 24];
        const char *semi;
        char *end;
        unsigned long v;
        size_t tl;

        if (len < FRAMECODE_SEI_UUID_LEN || memcmp(payload, FRAMECODE_SEI_UUID, FRAMECODE_SEI_UUID_LEN))
                return -ENOENT;
        tl = len - FRAMECODE_SEI_UUID_LEN;
        if (tl >= sizeof(text))
                return -EBADMSG;
        memcpy(text, payload + FRAMECODE_SEI_UUID_LEN, tl);
        text[tl] = '\0';
        semi = strstr(text, ";n=");
        if (strncmp(text, "cam=", 4) || !semi || semi - text - 4 <= 0 ||
            semi - text - 4 >= FRAMECODE_CAMERA_ID_MAX)
                return -EBADMSG;
        errno = 0;
        v = strtoul(semi + 3, &end, 10);
        if (errno || *end || end == semi + 3 || v > UINT32_MAX)
                return -EBADMSG;
        memcpy(camera_id, text + 4, (size_t)(semi - text - 4));
        camera_id[semi - text - 4] = '\0';
        *n = (uint32_t)v;
        return 0;
}
