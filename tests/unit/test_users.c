/* Unit tests of proxy-config/users.c: a password is stored as a SHA-512-crypt
 * hash crypt(3) verifies, never as itself; the file is 0600 whatever the
 * umask and round-trips; a bad file is refused naming the entry; names
 * haproxy would misread are refused. */
#include <crypt.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy-config/users.h"

static void test_hash_verifies_and_hides_the_password(void **state)
{
        char h[USER_HASH_MAX], h2[USER_HASH_MAX];
        struct crypt_data cd = { 0 };

        assert_int_equal(users_hash("correct horse", h), 0);
        assert_int_equal(strncmp(h, "$6$", 3), 0);
        assert_null(strstr(h, "correct"));
        assert_string_equal(crypt_r("correct horse", h, &cd), h);
        assert_string_not_equal(crypt_r("wrong horse", h, &cd), h);
        assert_int_equal(users_hash("correct horse", h2), 0);
        assert_string_not_equal(h, h2); /* a random salt each time */
}

static void test_names(void **state)
{
        static const char *const good[] = { "alice", "a", "guard.2", "x_y-z", "A1" };
        static const char *const bad[] = { "", "-x", ".x", "a b", "a#", "a$", "a\"", "ève",
                                           "01234567890123456789012345678901234567890123456789012345678901234" };

        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                assert_true(users_name_ok(good[i]));
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                if (users_name_ok(bad[i]))
                        fail_msg("'%s' accepted", bad[i]);
}

static void test_save_load_round_trip_0600(void **state)
{
        char dir[] = "/tmp/mwr-test-users-XXXXXX", path[128], err[256], *text;
        static const char *const cams[] = { "cam1", "cam-2" };
        struct users u = { 0 }, back;
        struct stat st;
        mode_t old = umask(0);
        FILE *f;
        long n;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/users.json", dir);
        assert_int_equal(users_set(&u, "alice", USER_ADMIN, NULL, 0, "pw-a", err, sizeof(err)), 0);
        assert_int_equal(users_set(&u, "bob", USER_VIEWER, cams, 2, "pw-b", err, sizeof(err)), 0);
        assert_int_equal(users_set(&u, "carol", USER_VIEWER, cams, 0, "pw-c", err, sizeof(err)), 0);
        assert_int_equal(users_set(&u, "bob", USER_VIEWER, cams, 1, "pw-b2", err, sizeof(err)), 0); /* replaces */
        assert_int_equal(u.n, 3);
        assert_int_equal(users_save(path, &u, err, sizeof(err)), 0);
        umask(old);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_non_null(f = fopen(path, "r"));
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        text = calloc(1, (size_t)n + 1);
        assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        assert_null(strstr(text, "pw-"));
        free(text);
        assert_int_equal(users_load(path, &back, err, sizeof(err)), 0);
        assert_int_equal(back.n, 3);
        assert_string_equal(back.v[0].name, "alice");
        assert_int_equal(back.v[0].role, USER_ADMIN);
        assert_true(back.v[0].all_cameras);
        assert_string_equal(back.v[1].name, "bob");
        assert_false(back.v[1].all_cameras);
        assert_int_equal(back.v[1].n_cameras, 1);
        assert_string_equal(back.v[1].cameras[0], "cam1");
        assert_string_equal(back.v[1].hash, u.v[1].hash);
        assert_false(back.v[2].all_cameras);
        assert_int_equal(back.v[2].n_cameras, 0);
        assert_int_equal(users_remove(&back, "bob"), 0);
        assert_int_equal(users_remove(&back, "bob"), -ENOENT);
        assert_int_equal(back.n, 2);
        users_free(&back);
        users_free(&u);
        unlink(path);
        rmdir(dir);
}

static void test_missing_file_is_no_users_and_bad_files_name_the_entry(void **state)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                { "[]", "not a users file" },
                { "{\"users\":[{\"name\":\"a b\",\"role\":\"viewer\",\"hash\":\"$6$x$y\"}]}", "users[0]" },
                { "{\"users\":[{\"name\":\"al\",\"role\":\"root\",\"hash\":\"$6$x$y\"}]}", "user al: 'role'" },
                { "{\"users\":[{\"name\":\"al\",\"role\":\"viewer\",\"hash\":\"plaintext\"}]}", "user al: 'hash'" },
                { "{\"users\":[{\"name\":\"al\",\"role\":\"viewer\",\"hash\":\"$6$x y\"}]}", "user al: 'hash'" },
                { "{\"users\":[{\"name\":\"al\",\"role\":\"viewer\",\"hash\":\"$6$x$y\",\"cameras\":[\"c/1\"]}]}",
                  "not a camera id" },
                { "{\"users\":[{\"name\":\"al\",\"role\":\"viewer\",\"hash\":\"$6$x$y\"},"
                  "{\"name\":\"al\",\"role\":\"admin\",\"hash\":\"$6$x$y\"}]}",
                  "twice" },
        };
        char dir[] = "/tmp/mwr-test-users-XXXXXX", path[128], err[256];
        struct users u;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/users.json", dir);
        assert_int_equal(users_load(path, &u, err, sizeof(err)), 0);
        assert_int_equal(u.n, 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                FILE *f = fopen(path, "w");
                assert_non_null(f);
                fputs(bad[i].text, f);
                fclose(f);
                err[0] = '\0';
                assert_int_equal(users_load(path, &u, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].needle) || !strstr(err, path))
                        fail_msg("case %zu: '%s' does not name %s", i, err, bad[i].needle);
                assert_null(u.v);
        }
        unlink(path);
        rmdir(dir);
}

static void test_set_refuses(void **state)
{
        struct users u = { 0 };
        char err[256];
        static const char *const badcam[] = { "ok", "no/pe" };

        assert_int_equal(users_set(&u, "a b", USER_VIEWER, NULL, 0, "pw", err, sizeof(err)), -EINVAL);
        assert_int_equal(users_set(&u, "al", USER_VIEWER, NULL, 0, "", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "empty password"));
        assert_int_equal(users_set(&u, "al", USER_VIEWER, badcam, 2, "pw", err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "no/pe"));
        assert_int_equal(u.n, 0);
        users_free(&u);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hash_verifies_and_hides_the_password),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_save_load_round_trip_0600),
                cmocka_unit_test(test_missing_file_is_no_users_and_bad_files_name_the_entry),
                cmocka_unit_test(test_set_refuses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
