"""Reading the benchmark scripts' result files: key=value lines in OUT/<name>.<rep>."""
import statistics


class Results:
    def __init__(self, out, reps):
        self.out, self.reps = out, reps

    def read(self, name, rep):
        """One run's key=value lines ({} if the run left no file)."""
        d = {}
        try:
            for line in open(f"{self.out}/{name}.{rep}"):
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    d[k] = v
        except FileNotFoundError:
            pass
        return d

    def vals(self, name, key, fn=float):
        """`key` across the reps that have it."""
        xs = []
        for r in range(1, self.reps + 1):
            try:
                xs.append(fn(self.read(name, r)[key]))
            except (KeyError, ValueError):
                pass
        return xs


def med(xs):
    return statistics.median(xs) if xs else float("nan")
