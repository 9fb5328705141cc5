/* payload_hash: a 64-bit hash of an H.264/H.265 access unit over its NAL unit
 * payloads only, so the same camera frame hashes the same whether it is held
 * in Annex-B form (start codes, as RTSP delivers it) or length-prefixed form
 * (as MP4 stores it).  Continuity matching across instances relies on it. */
#ifndef MWR_COMMON_PAYLOAD_HASH_H
#define MWR_COMMON_PAYLOAD_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* nal_length_size 0: Annex-B (start codes); 1, 2 or 4: big-endian length
 * prefixes of that size (MP4's avcC/hvcC).  The caller knows which: the two
 * cannot be told apart from the bytes alone.  Malformed length-prefixed data
 * hashes the remaining bytes as one NAL.  *nal_bytes (if not NULL) gets the
 * NAL payload bytes hashed: the frame's size, the same in either form. */
uint64_t payload_hash(const uint8_t *data, size_t len, int nal_length_size, uint32_t *nal_bytes);

/* True when the access unit holds a coded picture (a VCL NAL unit).  A
 * parser can split parameter sets or SEI into a packet of their own; such a
 * packet is stored but is not a frame. */
bool payload_has_picture(const uint8_t *data, size_t len, int nal_length_size, int hevc);

/* The NAL length size an MP4 sample entry's extradata declares: avcC (H.264)
 * keeps it in byte 4, hvcC (H.265) in byte 21; 0 when the extradata is
 * Annex-B or absent (then packets carry start codes). */
int payload_nal_length_size(const uint8_t *extradata, size_t len, int hevc);

#endif
