/* verify: timestamp continuity report of media files (`mwr verify FILE...`). */
#ifndef MWR_MWR_VERIFY_H
#define MWR_MWR_VERIFY_H

#include <stdbool.h>
#include <stdio.h>

/* Reads every file's packets (no decoding) and reports per file: frames,
 * keyframes, first/last video pts, duration, nominal frame duration, gaps in
 * presentation time (> 1.5 nominal frame durations), repeated pts, DTS that do
 * not increase, and read errors; as text or one JSON document on out.
 * 0 when every file is readable and continuous, 1 otherwise. */
int verify_files(char *const *paths, int n, bool json, FILE *out);

#endif
