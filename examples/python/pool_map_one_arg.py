import multiprocessing as mp
def func(arg):
    print("input : ", arg)
    print("Process done ...")
    return arg
if __name__ == '__main__':
    pool = mp.Pool(processes=2)
    res = pool.map(func, ("process in",))
    print(res)
