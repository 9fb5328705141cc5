/* Unit tests of worker/storage.c: what counts as storage that is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/storage.h"

static void test_a_directory_is_there_a_dangling_link_is_not(void **state)
{
        char tmp[] = "/tmp/mwr-storage-XXXXXX", link[PATH_MAX], file[PATH_MAX], why[PATH_MAX + 96];
        uint64_t free_b = 1;

        assert_non_null(mkdtemp(tmp));
        assert_int_equal(storage_probe(tmp, false, &free_b, why, sizeof(why)), 0);
        assert_true(free_b > 0);
        snprintf(link, sizeof(link), "%s/link", tmp);
        assert_int_equal(symlink("/nonexistent/mwr", link), 0);
        assert_int_equal(storage_probe(link, false, &free_b, why, sizeof(why)), -ENOENT);
        assert_int_equal(free_b, 0);
        assert_non_null(strstr(why, link)); /* names the directory */
        snprintf(file, sizeof(file), "%s/file", tmp);
        fclose(fopen(file, "w"));
        assert_int_equal(storage_probe(file, false, &free_b, why, sizeof(why)), -ENOTDIR);
        unlink(file);
        unlink(link);
        rmdir(tmp);
}

static void test_require_mountpoint_refuses_a_plain_directory(void **state)
{
        char tmp[] = "/tmp/mwr-storage-XXXXXX", why[PATH_MAX + 96];
        uint64_t free_b;

        assert_non_null(mkdtemp(tmp));
        assert_int_equal(storage_probe(tmp, true, &free_b, why, sizeof(why)), -ENODEV);
        assert_non_null(strstr(why, "not a mount point"));
        assert_int_equal(storage_probe("/", true, &free_b, why, sizeof(why)), 0);
        assert_int_equal(storage_probe("/proc", true, &free_b, why, sizeof(why)), 0);
        rmdir(tmp);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_a_directory_is_there_a_dangling_link_is_not),
                cmocka_unit_test(test_require_mountpoint_refuses_a_plain_directory),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
