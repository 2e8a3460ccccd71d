/* process_9.c - Python's subprocess with pass_fds, as a process object:
 * the program gets our Pipe's other end as descriptor 3, talks Python's
 * framing over it (here: the shell writes one raw frame), and is joined
 * like any child.
 *
 *   a, b = Pipe()
 *   p = subprocess.Popen(["sh", "-c", ...], pass_fds=[b.fileno()])
 *   print(a.recv_bytes()); p.wait()
 */
#include <stdio.h>

#include <multiproc.h>

int main(void) {
  mp_connection *mine, *theirs;
  int rc = mp_pipe(&mine, &theirs, 1);
  if (rc != 0) {
    fprintf(stderr, "mp_pipe: %s\n", mp_error_message(rc));
    return 1;
  }
  /* A 4-byte big-endian length, then the bytes: Python's framing. */
  char *argv[] = {"sh", "-c", "printf '\\000\\000\\000\\005hello' >&3", NULL};
  mp_pass_fd pass[] = {{.fd = mp_connection_fileno(theirs), .as = 3}};
  mp_process *p;
  rc = mp_process_new(&p, NULL, NULL,
                      &(mp_process_opts){.exec_argv = argv,
                                         .pass_fds = pass,
                                         .pass_fds_len = 1});
  if (rc == 0)
    rc = mp_process_start(p);
  if (rc != 0) {
    fprintf(stderr, "start: %s\n", mp_error_message(rc));
    return 1;
  }
  mp_connection_free(theirs); /* the program has its own copy */
  char buf[16];
  size_t len;
  rc = mp_connection_recv_bytes(mine, buf, sizeof buf, &len);
  if (rc == 0)
    printf("received %.*s\n", (int)len, buf);
  mp_process_join(p, MP_FOREVER);
  int code;
  mp_process_exitcode(p, &code);
  printf("exit code %d\n", code);
  mp_process_free(p);
  mp_connection_free(mine);
  return rc == 0 && code == 0 ? 0 : 1;
}
