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
#include <stdlib.h>

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", what, mp_error_message(rc));
    exit(1);
  }
  return rc;
}

static mp_proxy *records;

static mp_obj *record(const char *name, int score) {
  return mp_obj_tuple_pack(2, mp_obj_str(name), mp_obj_int(score));
}

static int insert_record(void *arg) {
  (void)arg;
  check(mp_proxy_append(records, record("English", 3)), "records.append");
  printf("A New record is added\n\n");
  fflush(stdout);
  return 0;
}

static int print_records(void *arg) {
  (void)arg;
  mp_obj *all;
  check(mp_proxy_getvalue(records, &all), "records");
  for (ssize_t i = 0; i < mp_obj_len(all); i++) {
    mp_obj *r = mp_obj_list_get(all, i);
    const char *name;
    int64_t score;
    mp_obj_get_str(mp_obj_list_get(r, 0), &name, NULL);
    mp_obj_get_int(mp_obj_list_get(r, 1), &score);
    printf("Name: %s\nScore: %lld\n\n", name, (long long)score);
  }
  mp_obj_free(all);
  fflush(stdout);
  return 0;
}

int main(void) {
  mp_manager *manager;
  check(mp_manager_start(&manager, NULL), "Manager()");
  mp_obj *init = mp_obj_list_pack(3, record("Computers", 1), record("Histoty", 5),
                                  record("Hindi", 9));
  check(mp_manager_create(manager, "list", mp_obj_tuple_pack(1, init), NULL, &records),
        "manager.list([...])");
  mp_process *p1, *p2;
  check(mp_process_new(&p1, insert_record, NULL, NULL), "Process");
  check(mp_process_new(&p2, print_records, NULL, NULL), "Process");
  check(mp_process_start(p1), "p1.start");
  check(mp_process_join(p1, MP_FOREVER), "p1.join");
  check(mp_process_start(p2), "p2.start");
  check(mp_process_join(p2, MP_FOREVER), "p2.join");
  int ok = mp_proxy_len(records) == 4;
  mp_process_free(p1);
  mp_process_free(p2);
  mp_proxy_free(records);
  mp_manager_free(manager);
  return ok ? 0 : 1;
}
