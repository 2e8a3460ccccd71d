import queue
q = queue.LifoQueue()
q.put(34)
q.put(56)
q.put(12)
q = queue.PriorityQueue()
q.put([5, 100])
q.put([7, 200])
q.put([3, "hello"])
q.put([4, {"name": "alex"}])
while 1:
    data = q.get()
    print(data)
