/* objects_1.c - build a value, print it as Python would, send it to a child
 * through a Pipe (pickled, as Python's conn.send) and read its answer. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

int main(void) {
  mp_connection *parent, *child;
  if (mp_pipe(&parent, &child, 1) != 0)
    return 1;
  pid_t pid = fork();
  if (pid == 0) { /* the child: receive, add a key, send back */
    mp_obj *v;
    if (mp_connection_recv(child, &v) != 0)
      _exit(1);
    mp_obj_dict_set_str(v, "seen_by", mp_obj_int(getpid()));
    mp_connection_send(child, v);
    mp_obj_free(v);
    _exit(0);
  }
  mp_obj *msg = mp_obj_dict();
  mp_obj_dict_set_str(msg, "id", mp_obj_int(7));
  mp_obj_dict_set_str(msg, "name", mp_obj_str("yuan"));
  mp_obj_dict_set_str(msg, "tags", mp_obj_list_pack(3, mp_obj_int(1),
                                                    mp_obj_float(2.5),
                                                    mp_obj_none()));
  mp_obj_print(stdout, msg); /* {'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]} */
  mp_connection_send(parent, msg);
  mp_obj *back;
  int rc = mp_connection_recv(parent, &back);
  if (rc != 0) {
    fprintf(stderr, "%s\n", mp_error_message(rc));
    return 1;
  }
  int64_t id;
  mp_obj_get_int(mp_obj_dict_get_str(back, "id"), &id);
  printf("id %lld, %zd keys\n", (long long)id, mp_obj_len(back));
  mp_obj_free(msg);
  mp_obj_free(back);
  waitpid(pid, NULL, 0);
  mp_connection_free(parent);
  mp_connection_free(child);
  return 0;
}
