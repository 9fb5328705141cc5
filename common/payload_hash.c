/* payload_hash: FNV-1a 64 over each NAL unit's bytes, with each NAL's length
 * mixed in so unit boundaries count.  Trailing zero bytes of a NAL (the
 * leading zero of a 4-byte start code, or trailing_zero_8bits) are ignored. */
#include "common/payload_hash.h"

#include <stdbool.h>

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * FNV_PRIME;
        return h;
}

struct acc {
        uint64_t h;
        uint64_t bytes;
};

static void mix_nal(struct acc *a, const uint8_t *p, size_t n)
{
        uint8_t len[4];

        while (n > 0 && p[n - 1] == 0)
                n--;
        if (n == 0)
                return;
        len[0] = (uint8_t)(n >> 24);
        len[1] = (uint8_t)(n >> 16);
        len[2] = (uint8_t)(n >> 8);
        len[3] = (uint8_t)n;
        a->h = fnv(fnv(a->h, len, 4), p, n);
        a->bytes += n;
}

static bool start_code_at(const uint8_t *d, size_t len, size_t i)
{
        return i + 3 <= len && d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1;
}

static void hash_annexb(struct acc *a, const uint8_t *d, size_t len)
{
        size_t nal = 0;
        bool in_nal = false;

        for (size_t i = 0; i < len;) {
                if (start_code_at(d, len, i)) {
                        if (in_nal)
                                mix_nal(a, d + nal, i - nal);
                        i += 3;
                        nal = i;
                        in_nal = true;
                } else {
                        i++;
                }
        }
        if (in_nal)
                mix_nal(a, d + nal, len - nal);
}

static void hash_length_prefixed(struct acc *a, const uint8_t *d, size_t len, int size)
{
        size_t i = 0;

        while (i + (size_t)size <= len) {
                size_t n = 0;
                for (int k = 0; k < size; k++)
                        n = n << 8 | d[i + (size_t)k];
                i += (size_t)size;
                if (n > len - i)
                        break;
                mix_nal(a, d + i, n);
                i += n;
        }
        if (i < len)
                mix_nal(a, d + i, len - i);
}

uint64_t payload_hash(const uint8_t *data, size_t len, int nal_length_size, uint32_t *nal_bytes)
{
        struct acc a = { .h = FNV_OFFSET };

        if (nal_length_size == 1 || nal_length_size == 2 || nal_length_size == 4)
                hash_length_prefixed(&a, data, len, nal_length_size);
        else
                hash_annexb(&a, data, len);
        if (nal_bytes)
                *nal_bytes = a.bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)a.bytes;
        return a.h;
}

int payload_nal_length_size(const uint8_t *extradata, size_t len, int hevc)
{
        if (!extradata || len < 5 || extradata[0] != 1)
                return 0;
        if (hevc)
                return len >= 23 ? (extradata[21] & 3) + 1 : 0;
        return (extradata[4] & 3) + 1;
}
