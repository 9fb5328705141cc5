/* matcher: which frames of two recordings of one camera are the same camera
 * frame.  Two instances see the same frames with the same payload (size and
 * hash) but stamp them on clocks that can differ: by tens of milliseconds
 * when both follow the camera's RTCP reports, by seconds when one fell back
 * to its receive clock.  So the offset is found first, by votes of frames
 * whose signatures agree, and frames are then paired only at that offset:
 * an equal payload at another time (a static scene, a repeated frame) is
 * never mistaken for the same frame. */
#ifndef MWR_CONTINUITY_MATCHER_H
#define MWR_CONTINUITY_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_frame {
        int64_t t_us;  /* presentation time on the recording's own camera clock */
        uint32_t size; /* payload bytes */
        uint32_t hash; /* (truncated) payload hash */
        bool key;
};

struct cm_pair {
        size_t a, b; /* indexes into the two inputs */
};

struct cm_match {
        int64_t shift_us;      /* b's clock minus a's: t_b = t_a + shift_us (median over pairs) */
        int64_t frame_us;      /* nominal frame duration used for the tolerances */
        struct cm_pair *pairs; /* increasing in both a and b; malloc'ed */
        size_t n_pairs;
};

/* Pair a[0..na) with b[0..nb) (each in decode order, as recorded).
 * max_shift_us bounds the clock offset searched (0: 5 s); frame_us is the
 * nominal frame duration (0: estimated from the inputs).  0 with n_pairs 0
 * when nothing matches (no common frame, or too few votes to trust an
 * offset: a single coincidence is not a match); -ENOMEM. */
int cm_match(const struct cm_frame *a, size_t na, const struct cm_frame *b, size_t nb, int64_t max_shift_us,
             int64_t frame_us, struct cm_match *out);
void cm_match_free(struct cm_match *m);

/* Median distance between neighbouring presentation times (B-frames allowed:
 * times are sorted first); 0 with fewer than two frames or on -ENOMEM. */
int64_t cm_frame_duration(const struct cm_frame *f, size_t n);

#endif
