#include "worker/www.h"

#include <string.h>

const struct www_file *www_find(const char *url)
{
        if (!strcmp(url, "/ui") || !strcmp(url, "/ui/"))
                url = "/ui/index.html";
        for (size_t i = 0; i < www_n_files; i++)
                if (!strcmp(www_files[i].path, url))
                        return &www_files[i];
        return NULL;
}
