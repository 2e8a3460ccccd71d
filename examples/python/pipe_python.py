from multiprocessing import Process, Pipe
def f(conn):
    conn.send_bytes(b"[12, {'name': 'yuan'}, 'hello']")
    response = conn.recv_bytes()
    print("response", response.decode())
    conn.close()
if __name__ == '__main__':
    parent_conn, child_conn = Pipe()
    p = Process(target=f, args=(child_conn,))
    p.start()
    print(parent_conn.recv_bytes().decode())
    parent_conn.send_bytes("儿子你好!".encode())
    p.join()
