/* shared_3.c - a ShareableList that Python can open with
 * shared_memory.ShareableList(name="my_list") (docs/shared.md). */
#include <stdio.h>

#include <multiproc.h>

int main(void) {
  mp_shareable_item items[] = {mp_shareable_int(42), mp_shareable_float(2.5),
                               mp_shareable_bool(1), mp_shareable_none(),
                               mp_shareable_str("howdy"),
                               mp_shareable_bytes("by\0tes", 6)};
  mp_shareable_list *sl;
  if (mp_shareable_list_new(&sl, items, 6, "my_list", NULL) != 0)
    return 1;
  mp_shareable_item v = mp_shareable_str("hello");
  mp_shareable_list_set(sl, 4, &v);
  char buf[16];
  mp_shareable_item it;
  if (mp_shareable_list_get(sl, 4, &it, buf, sizeof buf) == 0)
    printf("%s (%zu bytes)\n", buf, it.len);
  mp_shared_memory_unlink(mp_shareable_list_shm(sl));
  mp_shareable_list_free(sl);
  return 0;
}
