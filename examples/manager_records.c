/* manager_records.c - a list of records on a manager: one process appends
 * a record, another prints them all.
 *
 * It mirrors this Python program (seed 004, Manager):
 *
 *   import multiprocessing
 *   def print_records(records):
 *       for record in records:
 *           print("Name: {0}\nScore: {1}\n".format(record[0], record[1]))
 *   def insert_record(record, records):
 *       records.append(record)
 *       print("A New record is added\n")
 *   if __name__ == '__main__':
 *       with multiprocessing.Manager() as manager:
 *           records = manager.list([('Computers', 1), ('Histoty', 5), ('Hindi', 9)])
 *           new_record = ('English', 3)
 *           p1 = multiprocessing.Process(target=insert_record, args=(new_record, records))
 *           p2 = multiprocessing.Process(target=print_records, args=(records,))
 *           p1.start(); p1.join(); p2.start(); p2.join()
 *
 * Usage: manager_records [--quick]   (--quick changes nothing) */
#include <multiproc.h>
#include <stdio.h>

static mp_proxy *records;

static mp_obj *record(const char *name, int score) {
  return mp_obj_tuple_pack(2, mp_obj_str(name), mp_obj_int(score));
}

static int insert_record(void *arg) {
  MP_CHECK(mp_proxy_append(records, record("English", 3)));
  printf("A New record is added\n\n");
  return arg != NULL;
}

static int print_records(void *arg) {
  mp_obj *all;
  MP_CHECK(mp_proxy_getvalue(records, &all));
  for (ssize_t i = 0; i < mp_obj_len(all); i++) {
    mp_obj *r = mp_obj_list_get(all, i);
    MP_CHECK(mp_obj_printf(stdout, "Name: {}\nScore: {}\n\n",
                           mp_obj_list_get(r, 0), mp_obj_list_get(r, 1)));
  }
  mp_obj_free(all);
  return arg != NULL;
}

int main(void) {
  mp_manager *manager;
  MP_CHECK(mp_manager_start(&manager, NULL));
  mp_obj *init = mp_obj_list_pack(3, record("Computers", 1),
                                  record("Histoty", 5), record("Hindi", 9));
  MP_CHECK(mp_manager_create(manager, "list", mp_obj_tuple_pack(1, init),
                             NULL, &records)); /* manager.list(init) */
  MP_CHECK(mp_process_start_join(insert_record, NULL, NULL)); /* p1 */
  MP_CHECK(mp_process_start_join(print_records, NULL, NULL)); /* p2 */
  int ok = mp_proxy_len(records) == 4;
  mp_proxy_free(records);
  mp_manager_free(manager);
  return ok ? 0 : 1;
}
