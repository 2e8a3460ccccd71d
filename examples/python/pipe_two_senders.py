import multiprocessing as mp
def func_1(conn):
    conn.send("process 1")
def func_2(conn):
    conn.send("process 2")
if __name__ == '__main__':
    parent_conn, child_conn = mp.Pipe()
    p1 = mp.Process(target=func_1, args=(child_conn,))
    p2 = mp.Process(target=func_2, args=(child_conn,))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
    print(parent_conn.recv())
