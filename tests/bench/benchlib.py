"""Helpers shared by the Python parts of the benchmarks."""
import threading


def pool(fn, n, width=32):
    """fn(i) for i in range(n) on `width` threads."""
    idx = list(range(n))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not idx:
                    return
                i = idx.pop()
            fn(i)
    ts = [threading.Thread(target=worker) for _ in range(width)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
