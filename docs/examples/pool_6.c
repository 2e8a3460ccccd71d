/* pool_6.c - ThreadPool: the same API with threads as workers. Tasks
 * share the caller's memory (here a counter they add to), but a crash in
 * a task ends the whole program, and there is no task_timeout. */
#include <stdatomic.h>
#include <stdio.h>

#include <multiproc.h>

static atomic_long hits;

static int count_words(const void *in, void *out) {
  const char *s = *(const char *const *)in;
  int words = 0, inside = 0;
  for (; *s; s++) {
    int letter = *s != ' ';
    words += letter && !inside;
    inside = letter;
  }
  *(int *)out = words;
  atomic_fetch_add(&hits, 1); /* threads share this process's memory */
  return 0;
}

int main(void) {
  const char *lines[3] = {"to be or not to be", "that is", "the question"};
  int words[3];
  mp_pool *pool;
  if (mp_threadpool_new(&pool, &(mp_pool_opts){.processes = 3}) != 0)
    return 1;
  int rc = mp_pool_map(pool, count_words, lines, 3, sizeof(char *), words,
                       sizeof(int), NULL);
  mp_pool_free(pool);
  printf("%s: %d %d %d words, %ld calls\n", mp_err_name(rc), words[0],
         words[1], words[2], atomic_load(&hits));
  return rc == 0 ? 0 : 1;
}
