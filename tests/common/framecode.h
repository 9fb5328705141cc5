/* framecode: the frame number the camera simulator paints into every picture
 * and the frame judge reads back.  Shared by tests/camsim and tests/framecheck,
 * so both sides agree on one geometry and one check.
 *
 * In the picture: a grid of FRAMECODE_COLS x FRAMECODE_ROWS square cells in
 * the top-left corner, each cell black (bit 0) or white (bit 1).  Rows 0-1 hold
 * the 32-bit frame number, MSB first; row 2 holds a 16-bit check so a misread
 * cell is reported as unreadable instead of as a wrong number.  Cells are at
 * least 8 px wide, so they survive H.264 at any quantiser.
 *
 * In the bitstream: an H.264 (or H.265) "user data unregistered" SEI with the camera id
 * and the frame number, which makes every camera's payload unique even when
 * cameras share one encoder, and lets the judge check which camera it reads. */
#ifndef MWR_TESTS_FRAMECODE_H
#define MWR_TESTS_FRAMECODE_H

#include <stddef.h>
#include <stdint.h>

#define FRAMECODE_COLS 16
#define FRAMECODE_ROWS 3
#define FRAMECODE_MIN_CELL_PX 8
#define FRAMECODE_Y_BLACK 16
#define FRAMECODE_Y_WHITE 235
#define FRAMECODE_Y_THRESHOLD ((FRAMECODE_Y_BLACK + FRAMECODE_Y_WHITE) / 2)

/* 16-byte UUID that starts every camsim SEI payload */
#define FRAMECODE_SEI_UUID "mwr-camsim-frame"
#define FRAMECODE_SEI_UUID_LEN 16
#define FRAMECODE_CAMERA_ID_MAX 64
/* start code + NAL header + type + size + uuid + text + escapes + trailing */
#define FRAMECODE_SEI_MAX 192

struct framecode_geom {
        int cell_px;  /* side of one square cell */
        int width_px; /* FRAMECODE_COLS * cell_px */
        int height_px;/* FRAMECODE_ROWS * cell_px */
};

/* Geometry for a picture of width x height; -EINVAL when it is too small. */
int framecode_geometry(int width, int height, struct framecode_geom *g);

/* 16-bit check of a frame number (row 2 of the grid). */
uint16_t framecode_check(uint32_t n);

/* Paint n into the luma plane (the code area only). */
void framecode_paint(uint8_t *luma, int stride, const struct framecode_geom *g, uint32_t n);

/* Read the number back; -EBADMSG when a cell is ambiguous or the check fails. */
int framecode_read(const uint8_t *luma, int stride, const struct framecode_geom *g, uint32_t *n);

/* Build an Annex-B SEI NAL (start code included, emulation prevention applied)
 * carrying camera_id and n.  Returns its length, or -EINVAL/-ENOBUFS. */
int framecode_sei_build(uint8_t *out, size_t cap, const char *camera_id, uint32_t n);
/* The same message as an H.265 prefix SEI NAL. */
int framecode_sei_build_hevc(uint8_t *out, size_t cap, const char *camera_id, uint32_t n);

/* Parse a user-data-unregistered SEI payload (UUID + text, as libavcodec's
 * AV_FRAME_DATA_SEI_UNREGISTERED gives it).  -ENOENT when it is not ours,
 * -EBADMSG when it is ours but malformed. */
int framecode_sei_parse(const uint8_t *payload, size_t len, char camera_id[FRAMECODE_CAMERA_ID_MAX],
                        uint32_t *n);

#endif
