package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Replicas;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The fast CPU kernels: F32 paths for GEMM (packed panels, Vector API micro-kernel, split over a small thread pool),
 * elementwise ops with the broadcast patterns models use, reductions, strided copies and row gathers. Everything
 * else (F64, rare patterns) falls back to {@link ReferenceKernels}, whose results these must equal.
 */
final class CpuKernels extends ReferenceKernels {
    /** Below this many multiply-adds a GEMM runs on the calling thread. */
    private static final long PARALLEL_FMAS = 1L << 17;
    /** Smaller B operands are cheap to pack every time. */
    private static final long MIN_CACHED_PACK = 1L << 12;
    private final Gemm gemm;
    private final Pointwise pw;
    private final CausalAttention attention;
    private final ExecutorService pool;
    private final int threads;
    /** A replica's help from the others' threads once they have finished a step (see {@link ReplicaHelp}), else null. */
    private final ReplicaHelp help;
    /** Closed buffers kept for reuse, up to half the heap (word-level steps cycle through several 256 MB buffers). */
    private final FloatPool buffers = new FloatPool(Long.MAX_VALUE);

    /**
     * Packs of B operands this kernel set did not allocate, when it is a {@link Replicas replica}: the params belong
     * to the backend's own kernels, which cache their packs in the storage itself, and two replicas packing one weight
     * into that one cache at once would overwrite each other's panels. Weak keys: a released storage drops its pack.
     */
    private final Map<CpuStorage, ForeignPack> foreignPacks;

    /** A pack of a storage from elsewhere, valid while the storage's {@link CpuStorage#version} is unchanged. */
    private static final class ForeignPack {
        long key = CpuStorage.NO_PACK;
        int version;
        int uses;
        float[] packed;
    }

    CpuKernels(Gemm gemm, Pointwise pw, ExecutorService pool, int threads) {
        this(gemm, pw, pool, threads, null);
    }

    /**
     * A replica when {@code help} is given: one of several kernel sets over shared params, each used by one thread
     * (see {@link Replicas}), whose kernels the other sets' threads share in once those have finished their step.
     */
    CpuKernels(Gemm gemm, Pointwise pw, ExecutorService pool, int threads, ReplicaHelp help) {
        this.gemm = gemm;
        this.pw = pw;
        this.attention = new CausalAttention(gemm, pw);
        this.pool = pool;
        this.threads = threads;
        this.help = help;
        this.foreignPacks = help != null ? new WeakHashMap<>() : null;
    }

    @Override
    public Storage allocate(DType dtype, int size) {
        if (dtype != DType.F32 || size <= 0) {
            return dtype == DType.I32 && size > 0 ? ints(size) : super.allocate(dtype, size);
        }
        return storage(size, buffers.take(size, true));
    }

    @Override
    public Storage empty(DType dtype, int size) {
        if (dtype != DType.F32 || size <= 0) {
            return allocate(dtype, size);
        }
        return storage(size, buffers.take(size, false));
    }

    /**
     * Recycled I32 storages, with their arrays: a window's ids and targets, the same sizes every step. Only up to
     * 2^20 ids each (4 MB; the reference's window is 3,200 a replica), since the pool's emptying under memory pressure
     * does not reach them.
     */
    private static final int MAX_SPARE_INTS = 1 << 20;
    private final CpuStorage[] spareInts = new CpuStorage[16];
    private int spareIntCount;

    /** A zeroed I32 storage of {@code size}: a recycled one of that size when there is one. */
    private Storage ints(int size) {
        CpuStorage c = null;
        synchronized (spare) {
            for (int j = 0; j < spareIntCount; j++) {
                if (spareInts[j].size == size) {
                    c = spareInts[j];
                    spareInts[j] = spareInts[--spareIntCount];
                    spareInts[spareIntCount] = null;
                    break;
                }
            }
        }
        if (c == null) {
            return super.allocate(DType.I32, size);
        }
        c.reopen(size, null);
        java.util.Arrays.fill(c.i, 0);
        return c;
    }

    /**
     * Recycled storage objects, without their arrays (those went back to the pool): a tape releases thousands of
     * buffers a training step, and a new storage object for each was half the bytes an RNN step allocated.
     */
    private final CpuStorage[] spare = new CpuStorage[4096];
    private int spares;

    /** A storage over {@code array}: a recycled one when there is one. */
    private CpuStorage storage(int size, float[] array) {
        CpuStorage c = null;
        synchronized (spare) {
            if (spares > 0) {
                c = spare[--spares];
                spare[spares] = null;
            }
        }
        if (c == null) {
            return new CpuStorage(DType.F32, size, array, buffers);
        }
        c.reopen(size, array);
        return c;
    }

    @Override
    public void recycle(Storage s) {
        if (s instanceof CpuStorage c && c.dtype == DType.I32 && !c.closed() && c.size > 0 && c.size <= MAX_SPARE_INTS) {
            c.close();
            synchronized (spare) {
                if (spareIntCount < spareInts.length) {
                    spareInts[spareIntCount++] = c;
                }
            }
            return;
        }
        if (!(s instanceof CpuStorage c) || c.dtype != DType.F32 || !c.from(buffers) || c.closed()) {
            s.close();
            return;
        }
        c.close(); // its array (and pack) back to the pool
        c.f = null; // a use that slipped through until it is reopened fails at once
        synchronized (spare) {
            if (spares < spare.length) {
                spare[spares++] = c;
            }
        }
    }

    private static boolean f32(Storage... ss) {
        for (Storage s : ss) {
            if (s.dtype() != DType.F32) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------- GEMM

    @Override
    public void matmul(MatmulSpec s, Storage a, Storage b, Storage c) {
        if (!f32(a, b, c)) {
            super.matmul(s, a, b, c);
            return;
        }
        CpuStorage sb = CpuStorage.of(b);
        float[] fa = CpuStorage.of(a).f, fb = sb.f, fc = CpuStorage.out(c).f;
        int m = s.m(), n = s.n(), k = s.k();
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!s.accumulate()) {
                java.util.Arrays.fill(fc, 0, s.batch() * m * n, 0f);
            }
            return;
        }
        // A (i, q) through strides: row-major (m, k), or stored (k, m) when transposed. For a kernel that does not pack
        // A itself (the scalar one), a transposed A is copied to row-major first when it feeds enough columns: the
        // kernel's row streams then run along contiguous memory (a weight gradient X^T dY: 256x6400x1024 went from
        // about 50 to the row-major path's speed).
        boolean copyA = s.transA() && n >= 64 && k >= 256 && m >= 8 && !gemm.packsA(m);
        int ars = s.transA() && !copyA ? 1 : k, acs = s.transA() && !copyA ? m : 1;
        long perBatch = (long) m * n * k;
        if (s.batch() > 1 && perBatch < PARALLEL_FMAS * 8 && threads > 1) {
            // many small products (attention): whole products per thread, no per-product fork/join
            float[][] sharedScratch = {null};
            float[] shared = s.strideB() == 0 ? packed(sb, 0, k, n, s.transB(), true, sharedScratch) : null;
            try {
                rows(s.batch(), perBatch * s.batch(), (p0, p1) -> {
                    float[] bp = shared == null ? buffers.take(packSize(k, n), false) : shared;
                    float[] at = copyA ? buffers.take(m * k, false) : null;
                    try {
                        for (int p = p0; p < p1; p++) {
                            if (shared == null) {
                                bp = gemm.pack(fb, p * s.strideB(), k, n, s.transB(), bp);
                            }
                            float[] ap = fa;
                            int aOff = p * s.strideA();
                            if (copyA) {
                                transpose(fa, aOff, k, m, at);
                                ap = at;
                                aOff = 0;
                            }
                            gemm.panels(ap, aOff, ars, acs, bp, fc, p * m * n, m, n, k, 0, (n + gemm.panel() - 1) / gemm.panel(),
                                    s.accumulate());
                        }
                    } finally {
                        if (shared == null) {
                            buffers.give(bp);
                        }
                        if (at != null) {
                            buffers.give(at);
                        }
                    }
                });
            } finally {
                if (sharedScratch[0] != null) {
                    buffers.give(sharedScratch[0]);
                }
            }
            return;
        }
        float[] bp = null;
        float[][] scratch = {null};
        float[] at = copyA ? buffers.take(m * k, false) : null;
        try {
            for (int p = 0; p < s.batch(); p++) {
                if (p == 0 || s.strideB() != 0) {
                    bp = packed(sb, p * s.strideB(), k, n, s.transB(), s.strideB() == 0 || s.batch() == 1, scratch);
                }
                if (copyA) {
                    transposeParallel(fa, p * s.strideA(), k, m, at, 0);
                    run(at, 0, ars, acs, bp, fc, p * m * n, m, n, k, s.accumulate());
                } else {
                    run(fa, p * s.strideA(), ars, acs, bp, fc, p * m * n, m, n, k, s.accumulate());
                }
            }
        } finally {
            if (at != null) {
                buffers.give(at);
            }
            if (scratch[0] != null) {
                buffers.give(scratch[0]);
            }
        }
    }

    /** Floats of B (k, n) packed into whole panels. */
    private int packSize(int k, int n) {
        int w = gemm.panel();
        return (n + w - 1) / w * k * w;
    }

    /** dst (cols, rows) = src (rows, cols) from {@code off}. */
    static void transpose(float[] src, int off, int rows, int cols, float[] dst) {
        transpose(src, off, rows, cols, dst, 0, 0, cols);
    }

    /** {@link #transpose} into dst from {@code dOff}, its 32-column strips split over the threads. */
    private void transposeParallel(float[] src, int off, int rows, int cols, float[] dst, int dOff) {
        int strips = (cols + 31) / 32;
        rows(strips, (long) rows * cols / 8,
                (s0, s1) -> transpose(src, off, rows, cols, dst, dOff, s0 * 32, Math.min(cols, s1 * 32)));
    }

    /** Each thread's 32 x 32 tile for {@link #transpose}: a new one per call was 6% of the bytes an LSTM step allocated. */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[32 * 32]);

    /**
     * Columns [c0From, c0To) of src to rows of dst, in 32 x 32 tiles, one 32-column strip of src at a time from top to
     * bottom: the strip's 32 rows of dst fill front to back. Each tile goes through a small local copy so that dst is
     * written a whole 32-float run at a time: writing it one element per row, 32 rows apart, put every store of a tile
     * in one cache set when dst's rows are 4 KB apart (1,024 floats), and a 1024 x 256 copy ran at about 10 ns an element.
     */
    private static void transpose(float[] src, int off, int rows, int cols, float[] dst, int dOff, int c0From, int c0To) {
        float[] tile = TILE.get();
        for (int c0 = c0From; c0 < c0To; c0 += 32) {
            int cw = Math.min(c0To, c0 + 32) - c0;
            for (int r0 = 0; r0 < rows; r0 += 32) {
                int rh = Math.min(rows, r0 + 32) - r0;
                for (int r = 0; r < rh; r++) {
                    System.arraycopy(src, off + (r0 + r) * cols + c0, tile, r * 32, cw);
                }
                for (int c = 0; c < cw; c++) {
                    int d = dOff + (c0 + c) * rows + r0;
                    for (int r = 0; r < rh; r++) {
                        dst[d + r] = tile[r * 32 + c];
                    }
                }
            }
        }
    }

    /**
     * B packed into panels. When the same B (a weight matrix) comes back unchanged, the pack made on its second use is
     * reused until a kernel writes to it ({@link CpuStorage#out}); one-off operands are packed into a scratch buffer.
     */
    private float[] packed(CpuStorage b, int off, int k, int n, boolean trans, boolean cacheable, float[][] scratch) {
        if (!cacheable || (long) k * n < MIN_CACHED_PACK) {
            return gemm.pack(b.f, off, k, n, trans, scratch(scratch, k, n));
        }
        long key = (((long) off * 31 + k) * 31 + n) * 2 + (trans ? 1 : 0);
        if (foreignPacks != null && !b.from(buffers)) {
            return foreignPacked(b, key, off, k, n, trans, scratch);
        }
        if (b.packedKey == key) {
            return b.packed;
        }
        if (++b.uses < 2) {
            return gemm.pack(b.f, off, k, n, trans, scratch(scratch, k, n));
        }
        float[] into = b.packed != null && b.packed.length >= packSize(k, n) ? b.packed : buffers.take(packSize(k, n), false);
        if (into != b.packed && b.packed != null) {
            buffers.give(b.packed);
        }
        b.packed = gemm.pack(b.f, off, k, n, trans, into); // the stale pack's array, or one from the pool
        b.packedKey = key;
        return b.packed;
    }

    /** {@link #packed} for a storage this replica did not allocate: the same policy, cached here instead of in it. */
    private float[] foreignPacked(CpuStorage b, long key, int off, int k, int n, boolean trans, float[][] scratch) {
        ForeignPack p = foreignPacks.computeIfAbsent(b, s -> new ForeignPack());
        if (p.version != b.version) {
            p.key = CpuStorage.NO_PACK;
            p.uses = 0;
            p.version = b.version;
        }
        if (p.key == key) {
            return p.packed;
        }
        if (++p.uses < 2) {
            return gemm.pack(b.f, off, k, n, trans, scratch(scratch, k, n));
        }
        if (p.packed == null || p.packed.length < packSize(k, n)) {
            if (p.packed != null) {
                buffers.give(p.packed);
            }
            p.packed = buffers.take(packSize(k, n), false);
        }
        p.packed = gemm.pack(b.f, off, k, n, trans, p.packed);
        p.key = key;
        return p.packed;
    }

    /** The pooled scratch buffer of {@code holder} for packing B (k, n), taken on first use; the caller gives it back. */
    private float[] scratch(float[][] holder, int k, int n) {
        if (holder[0] == null) {
            holder[0] = buffers.take(packSize(k, n), false);
        }
        return holder[0];
    }

    private void run(float[] a, int aOff, int ars, int acs, float[] bp, float[] c, int cOff, int m, int n, int k,
                     boolean acc) {
        int panels = (n + gemm.panel() - 1) / gemm.panel();
        int width = width();
        ExecutorService exec = executor(width);
        // a handoff to the pool costs tens of microseconds here: a few rows (batch-1 generation) stay on this thread
        long fmas = (long) m * n * k;
        int tasks = fmas < PARALLEL_FMAS || (m < 8 && fmas < 32 * PARALLEL_FMAS) ? 1 : Math.min(width, panels);
        if (tasks <= 1) {
            gemm.panels(a, aOff, ars, acs, bp, c, cOff, m, n, k, 0, panels, acc);
            return;
        }
        if (gemm.packsA(m) && m >= n && m >= 16 * width) {
            // A at least as tall as B is wide: the threads take bands of rows, so A is packed once in all, where
            // splitting the panels had every thread pack all of it (6400x1024x256:nt, 2 threads: 148 -> 179 GFLOP/s)
            share(m, rowChunk(m, width), width, exec, (r0, r1) -> gemm.panels(a, aOff + r0 * ars, ars, acs, bp, c,
                    cOff + r0 * n, r1 - r0, n, k, 0, panels, acc));
            return;
        }
        List<Future<?>> fs = new ArrayList<>(tasks - 1);
        for (int t = 1; t < tasks; t++) {
            int p0 = panels * t / tasks, p1 = panels * (t + 1) / tasks;
            fs.add(exec.submit(() -> gemm.panels(a, aOff, ars, acs, bp, c, cOff, m, n, k, p0, p1, acc)));
        }
        join(fs, () -> gemm.panels(a, aOff, ars, acs, bp, c, cOff, m, n, k, 0, panels / tasks, acc), "matmul");
    }

    /** Rows of a band for {@link #share}: m in 8 bands per thread, each a multiple of 8 rows (the kernels' strips). */
    private static int rowChunk(int m, int width) {
        int per = 8 * width;
        return Math.max(8, ((m + per - 1) / per + 7) / 8 * 8);
    }

    /**
     * {@code body} over [0, n) in chunks of {@code chunk}, which up to {@code width} threads take in turn as each
     * finishes the one before, this thread among them: a thread the host runs slower takes fewer. With a fixed half
     * each, 2-thread GEMMs here came out either near twice one thread's speed or near one thread's, run to run. In one
     * process, alternating with fixed halves every 0.2 s (3 runs of 20 pairs; median of the pairs' ratios): 1.22, 1.10
     * and 1.06x at 6400x256x1024, 1.18, 1.06 and 1.02x at 6400x1024x256:nt, 0.98, 1.12 and 1.00x at 3200x256x256. The
     * chunks' bounds do not depend on timing, and a GEMM's rows give the same bits in any chunk (GemmPathsTest).
     */
    private static void share(int n, int chunk, int width, ExecutorService exec, RowRange body) {
        int chunks = (n + chunk - 1) / chunk;
        AtomicInteger next = new AtomicInteger();
        Runnable take = () -> {
            for (int i; (i = next.getAndIncrement()) < chunks; ) {
                body.run(i * chunk, Math.min(n, (i + 1) * chunk));
            }
        };
        List<Future<?>> fs = new ArrayList<>(width - 1);
        for (int t = 1; t < Math.min(width, chunks); t++) {
            fs.add(exec.submit(take));
        }
        join(fs, take, "matmul");
    }

    /**
     * Runs this thread's share, then waits for every submitted task even when the share or a task failed or the
     * thread is interrupted: the callers give their scratch buffers back to the pool right after, so no task may
     * still be reading them. Rethrows the first failure.
     */
    private static void join(List<Future<?>> fs, Runnable own, String what) {
        Throwable failure = null;
        try {
            own.run();
        } catch (RuntimeException | Error e) { // an Error too: the tasks may still be using the caller's buffers
            failure = e;
        }
        await(fs, failure, what);
    }

    /** Waits for every task as {@link #join} does, after this thread's share ended with {@code failure} or null. */
    private static void await(List<Future<?>> fs, Throwable failure, String what) {
        await(fs, failure, what, false);
    }

    /**
     * {@link #await(List, Throwable, String)}; {@code asThrown}: a task's unchecked exception is rethrown as it is (a replica's step, whose
     * errors are the user's to read), not wrapped in one that names {@code what}.
     */
    static void await(List<Future<?>> fs, Throwable failure, String what, boolean asThrown) {
        boolean interrupted = false;
        for (Future<?> f : fs) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // keep waiting: the task still uses the caller's buffers
                } catch (ExecutionException e) {
                    if (failure == null) {
                        Throwable c = e.getCause();
                        failure = asThrown && (c instanceof RuntimeException || c instanceof Error) ? c
                                : new CellarException(what + " failed: " + c, c);
                    }
                    break;
                } catch (java.util.concurrent.CancellationException e) { // the backend was closed (shutdownNow)
                    if (failure == null) {
                        failure = new CellarException(what + " was cancelled: the backend was closed");
                    }
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) {
            throw (RuntimeException) failure;
        }
        if (interrupted) {
            throw new CellarException("interrupted while " + what + " ran");
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void unary(Unary op, Storage x, Storage out, int n) {
        if (!f32(x, out)) {
            super.unary(op, x, out, n);
            return;
        }
        float[] a = CpuStorage.of(x).f, o = CpuStorage.out(out).f;
        switch (op) {
            case NEG -> {
                for (int i = 0; i < n; i++) {
                    o[i] = -a[i];
                }
            }
            case TANH -> chunks(n, (i0, i1) -> pw.tanh(a, o, i0, i1));
            case SIGMOID -> chunks(n, (i0, i1) -> pw.sigmoid(a, o, i0, i1));
            case EXP -> chunks(n, (i0, i1) -> pw.exp(a, o, i0, i1));
            case GELU -> chunks(n, (i0, i1) -> pw.gelu(a, o, i0, i1));
            case GELU_GRAD -> chunks(n, (i0, i1) -> pw.geluGrad(a, o, i0, i1));
            case RELU -> {
                for (int i = 0; i < n; i++) {
                    o[i] = a[i] > 0 ? a[i] : 0f;
                }
            }
            case STEP -> {
                for (int i = 0; i < n; i++) {
                    o[i] = a[i] > 0 ? 1f : 0f;
                }
            }
            default -> {
                for (int i = 0; i < n; i++) {
                    o[i] = (float) unary(op, a[i]);
                }
            }
        }
    }

    @Override
    public void binary(Binary op, Storage a, int[] as, Storage b, int[] bs, Storage out, Shape shape) {
        if (!f32(a, b, out)) {
            super.binary(op, a, as, b, bs, out, shape);
            return;
        }
        float[] fa = CpuStorage.of(a).f, fb = CpuStorage.of(b).f, fo = CpuStorage.out(out).f;
        int r = shape.rank();
        int n = shape.size();
        if (n == 0) {
            return;
        }
        int inner = r == 0 ? 1 : shape.dim(r - 1);
        int sa = r == 0 ? 0 : as[r - 1], sb = r == 0 ? 0 : bs[r - 1];
        if (r <= 2) { // rows of a matrix (or one row): no index arrays, which were 4% of the bytes an LSTM step allocated
            int ra = r == 2 ? as[0] : 0, rb = r == 2 ? bs[0] : 0;
            if (op == Binary.ADD && sa == 1 && sb == 1) {
                // sums along contiguous rows on the Vector API (Pointwise.add): C2 on JDK 17 left row()'s loop scalar,
                // its three arrays at offsets it could not prove apart (a recurrence's gradients, summed at every
                // step, took 4 us for 32 x 256); a contiguous sum goes as one run over all n
                if (r < 2 || ra == inner && rb == inner) {
                    split(n, 4096, n, (i0, i1) -> pw.add(fa, i0, fb, i0, fo, i0, i1 - i0));
                } else {
                    rows(n / inner, n, (r0, r1) -> {
                        for (int row = r0; row < r1; row++) {
                            pw.add(fa, row * ra, fb, row * rb, fo, row * inner, inner);
                        }
                    });
                }
                return;
            }
            rows(n / inner, n, (r0, r1) -> {
                for (int row = r0; row < r1; row++) {
                    row(op, fa, row * ra, sa, fb, row * rb, sb, fo, row * inner, inner);
                }
            });
            return;
        }
        int[] dims = shape.dims();
        rows(n / inner, n, (r0, r1) -> {
            // the index of row r0 over the leading dimensions, then counted up row by row
            int[] idx = new int[Math.max(0, r - 1)];
            for (int d = r - 2, rest = r0; d >= 0; d--) {
                idx[d] = rest % dims[d];
                rest /= dims[d];
            }
            for (int row = r0; row < r1; row++) {
                int ia = 0, ib = 0;
                for (int d = 0; d < r - 1; d++) {
                    ia += idx[d] * as[d];
                    ib += idx[d] * bs[d];
                }
                row(op, fa, ia, sa, fb, ib, sb, fo, row * inner, inner);
                for (int d = r - 2; d >= 0; d--) {
                    if (++idx[d] < dims[d]) {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        });
    }

    /** One innermost row: out[o + j] = op(a[ia + j*sa], b[ib + j*sb]); contiguous and row-broadcast cases unrolled. */
    private static void row(Binary op, float[] a, int ia, int sa, float[] b, int ib, int sb, float[] out, int o, int len) {
        if (op == Binary.ADD || op == Binary.SUB || op == Binary.MUL || op == Binary.DIV) {
            if (sa == 1 && sb == 1) {
                switch (op) {
                    case ADD -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] + b[ib + j]; }
                    case SUB -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] - b[ib + j]; }
                    case MUL -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] * b[ib + j]; }
                    default -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] / b[ib + j]; }
                }
                return;
            }
            if (sa == 1 && sb == 0) {
                float y = b[ib];
                switch (op) {
                    case ADD -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] + y; }
                    case SUB -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] - y; }
                    case MUL -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] * y; }
                    default -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j] / y; }
                }
                return;
            }
            if (sa == 0 && sb == 1) {
                float x = a[ia];
                switch (op) {
                    case ADD -> { for (int j = 0; j < len; j++) out[o + j] = x + b[ib + j]; }
                    case SUB -> { for (int j = 0; j < len; j++) out[o + j] = x - b[ib + j]; }
                    case MUL -> { for (int j = 0; j < len; j++) out[o + j] = x * b[ib + j]; }
                    default -> { for (int j = 0; j < len; j++) out[o + j] = x / b[ib + j]; }
                }
                return;
            }
        }
        switch (op) {
            case ADD -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j * sa] + b[ib + j * sb]; }
            case SUB -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j * sa] - b[ib + j * sb]; }
            case MUL -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j * sa] * b[ib + j * sb]; }
            case DIV -> { for (int j = 0; j < len; j++) out[o + j] = a[ia + j * sa] / b[ib + j * sb]; }
            default -> {
                for (int j = 0; j < len; j++) {
                    out[o + j] = (float) binary(op, a[ia + j * sa], b[ib + j * sb]);
                }
            }
        }
    }

    @Override
    public void reduce(Reduce op, Storage x, int outer, int len, int inner, Storage out) {
        if (!f32(x, out)) {
            super.reduce(op, x, outer, len, inner, out);
            return;
        }
        float[] a = CpuStorage.of(x).f, o = CpuStorage.out(out).f;
        boolean sum = op == Reduce.SUM;
        if (inner == 1) {
            // along the last axis (softmax, layer norm): one row per output, four partial sums or maxima
            rows(outer, (long) outer * len, (p0, p1) -> {
                for (int p = p0; p < p1; p++) {
                    int xb = p * len;
                    o[p] = sum ? sumRow(a, xb, len) : maxRow(a, xb, len);
                }
            });
            return;
        }
        // over a middle axis (a bias's gradient: (rows, out) summed over the rows, at every step of a GRU): whole rows
        // at a time, the sums through the vector kernels from 0, in the order one element at a time would take. A
        // scalar loop over the elements took 3.0% of a GRU training step's JFR samples, the vector add 1.2%.
        rows(outer, (long) outer * len * inner, (p0, p1) -> {
            for (int p = p0; p < p1; p++) {
                int ob = p * inner, xb = p * len * inner;
                java.util.Arrays.fill(o, ob, ob + inner, sum ? 0f : Float.NEGATIVE_INFINITY);
                for (int l = 0, xr = xb; l < len; l++, xr += inner) {
                    if (sum) {
                        pw.add(o, ob, a, xr, o, ob, inner);
                        continue;
                    }
                    for (int i = 0; i < inner; i++) {
                        o[ob + i] = Math.max(o[ob + i], a[xr + i]);
                    }
                }
            }
        });
    }

    private static float sumRow(float[] a, int off, int len) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int l = 0;
        for (; l + 4 <= len; l += 4) {
            s0 += a[off + l];
            s1 += a[off + l + 1];
            s2 += a[off + l + 2];
            s3 += a[off + l + 3];
        }
        for (; l < len; l++) {
            s0 += a[off + l];
        }
        return (s0 + s1) + (s2 + s3);
    }

    private static float maxRow(float[] a, int off, int len) {
        float m0 = Float.NEGATIVE_INFINITY, m1 = m0, m2 = m0, m3 = m0;
        int l = 0;
        for (; l + 4 <= len; l += 4) {
            m0 = Math.max(m0, a[off + l]);
            m1 = Math.max(m1, a[off + l + 1]);
            m2 = Math.max(m2, a[off + l + 2]);
            m3 = Math.max(m3, a[off + l + 3]);
        }
        for (; l < len; l++) {
            m0 = Math.max(m0, a[off + l]);
        }
        return Math.max(Math.max(m0, m1), Math.max(m2, m3));
    }

    @Override
    public void copy(Storage src, int so, int[] ss, Storage dst, int dOff, int[] ds, Shape shape) {
        if (!f32(src, dst)) {
            super.copy(src, so, ss, dst, dOff, ds, shape);
            return;
        }
        float[] s = CpuStorage.of(src).f, d = CpuStorage.out(dst).f;
        int r = shape.rank();
        int n = shape.size();
        if (n == 0) {
            return;
        }
        if (r == 2 && ss[0] == 1 && ss[1] == shape.dim(0) && ds[0] == shape.dim(1) && ds[1] == 1 && n >= 1024) {
            // a contiguous matrix (dims[1], dims[0]) transposed into a contiguous one: tiles, not a strided gather
            transposeParallel(s, so, shape.dim(1), shape.dim(0), d, dOff);
            return;
        }
        int inner = r == 0 ? 1 : shape.dim(r - 1);
        int si = r == 0 ? 0 : ss[r - 1], di = r == 0 ? 0 : ds[r - 1];
        if (r <= 2) { // most copies (slices, gradient regions, panels): no index array, which was 8% of a step's bytes
            int rows = r == 2 ? shape.dim(0) : 1, rs = r == 2 ? ss[0] : 0, rd = r == 2 ? ds[0] : 0;
            for (int q = 0; q < rows; q++) {
                copyRow(s, so + q * rs, si, d, dOff + q * rd, di, inner);
            }
            return;
        }
        int[] dims = shape.dims();
        int[] idx = new int[r - 1];
        for (int o = 0; o < n; o += inner) {
            int is = so, id = dOff;
            for (int q = 0; q < r - 1; q++) {
                is += idx[q] * ss[q];
                id += idx[q] * ds[q];
            }
            copyRow(s, is, si, d, id, di, inner);
            for (int q = r - 2; q >= 0; q--) {
                if (++idx[q] < dims[q]) {
                    break;
                }
                idx[q] = 0;
            }
        }
    }

    /** One innermost row of {@link #copy}: d[id + j * di] = s[is + j * si] for j < len. */
    private static void copyRow(float[] s, int is, int si, float[] d, int id, int di, int len) {
        if (si == 1 && di == 1) {
            System.arraycopy(s, is, d, id, len);
        } else {
            for (int j = 0; j < len; j++) {
                d[id + j * di] = s[is + j * si];
            }
        }
    }

    @Override
    public void gather(Storage table, Storage ids, Storage out, int rows, int width) {
        if (!f32(table, out)) {
            super.gather(table, ids, out, rows, width);
            return;
        }
        CpuStorage t = CpuStorage.of(table), ix = CpuStorage.of(ids);
        float[] o = CpuStorage.out(out).f;
        int tableRows = width == 0 ? 0 : t.size / width;
        for (int r = 0; r < rows; r++) {
            System.arraycopy(t.f, checkedId(ix, r, tableRows) * width, o, r * width, width);
        }
    }

    @Override
    public void scatterAdd(Storage src, Storage ids, Storage table, int rows, int width) {
        if (!f32(src, table)) {
            super.scatterAdd(src, ids, table, rows, width);
            return;
        }
        float[] s = CpuStorage.of(src).f;
        CpuStorage t = CpuStorage.out(table), ix = CpuStorage.of(ids);
        int tableRows = width == 0 ? 0 : t.size / width;
        for (int r = 0; r < rows; r++) {
            int base = checkedId(ix, r, tableRows) * width;
            for (int c = 0; c < width; c++) {
                t.f[base + c] += s[r * width + c];
            }
        }
    }

    // ---------------------------------------------------------------- fused

    /**
     * {@code lstm_step}: inputs [gates (B, 4H) pre-activations in PyTorch order i, f, g, o; c_prev (B, H)], outputs
     * [h (B, H), c (B, H)], dims [B, H]; c = sigmoid(f) c_prev + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c).
     * {@code lstm_step_backward}: inputs [gates, c_prev, c, dh, dc], outputs [dgates (B, 4H), dc_prev (B, H)],
     * dims [B, H]; the gate activations are recomputed from the pre-activations instead of being stored.
     * {@code gru_step}: inputs [gi (B, 3H) = x W_ih^T + b_ih, gh (B, 3H) = h W_hh^T + b_hh, PyTorch order r, z, n;
     * h_prev (B, H)], outputs [h (B, H)], dims [B, H]; r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
     * n = tanh(gi_n + r gh_n), h = (1 - z) n + z h_prev. {@code gru_step_backward}: inputs [gi, gh, h_prev, dh],
     * outputs [dgi, dgh, dh_prev], dims [B, H].
     * {@code softmax}: inputs [x (N, V)], outputs [y (N, V)] along rows, dims [N, V]; {@code softmax_backward}: inputs
     * [y, dy], outputs [dx = y (dy - sum(dy y))], dims [N, V].
     * {@code layer_norm}: inputs [x (N, D), gamma (D), beta (D)], outputs [y (N, D)], dims [N, D, e] with eps = 10^-e
     * (e = 5 when absent); {@code layer_norm_backward}: inputs [x, gamma, dy], outputs [dx (N, D), dgamma (D),
     * dbeta (D)], dims as forward.
     * {@code cross_entropy}: inputs [logits (N, V), targets (N) I32], outputs [loss (N) = lse - logits[target],
     * lse (N) = log sum exp of the row], dims [N, V]. {@code cross_entropy_backward}: inputs [logits, targets, lse,
     * dloss (N)], outputs [dlogits (N, V) = dloss (softmax - one_hot(target))], dims [N, V].
     * {@code tanh_backward}: inputs [y = tanh(x), g], outputs [g (1 - y^2)], dims [rows, cols]; {@code gelu_backward}:
     * inputs [x, g], outputs [g GELU'(x)] (the derivative of the tanh approximation), dims [rows, cols].
     * {@code attention}: inputs [q (B, T, D), k (B, S, D), v (B, S, D)] with H heads of D / H columns each, outputs
     * [y (B, T, D), p (B, H, T, S)], dims [B, T, S, H, D]: causal multi-head attention, query i (at position S - T + i)
     * seeing keys j <= S - T + i; p = softmax(q k^T / sqrt(D / H)) per head, zero where masked, and y = p v with the
     * heads side by side. {@code attention_backward}: inputs [q, k, v, p, dy], outputs [dq, dk, dv], dims as forward.
     * F32 only; other dtypes use the composed ops.
     */
    @Override
    public java.util.Optional<dev.cellar.api.spi.FusedKernel> fused(String name) {
        // made once per name: the tape asks at every fused step (twice per LSTM time step), and a new lambda and
        // Optional each time were 3% of the bytes an LSTM training step allocated
        return fusedByName.computeIfAbsent(name, this::makeFused);
    }

    private final java.util.Map<String, java.util.Optional<dev.cellar.api.spi.FusedKernel>> fusedByName =
            new java.util.concurrent.ConcurrentHashMap<>();

    private java.util.Optional<dev.cellar.api.spi.FusedKernel> makeFused(String name) {
        return switch (name) {
            case "lstm_step" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 2, out, 2, dims);
                float[] g = f32(in[0]), cp = f32(in[1]), h = CpuStorage.out(out[0]).f, c = CpuStorage.out(out[1]).f;
                int hid = dims[1];
                rows(dims[0], (long) dims[0] * hid * 40, (r0, r1) -> pw.lstmForward(g, cp, h, c, hid, r0, r1));
            });
            case "lstm_step_backward" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 5, out, 2, dims);
                float[] g = f32(in[0]), cp = f32(in[1]), c = f32(in[2]), dh = f32(in[3]), dc = f32(in[4]);
                float[] dg = CpuStorage.out(out[0]).f, dcp = CpuStorage.out(out[1]).f;
                int hid = dims[1];
                rows(dims[0], (long) dims[0] * hid * 60, (r0, r1) -> pw.lstmBackward(g, cp, c, dh, dc, dg, dcp, hid, r0, r1));
            });
            case "gru_step" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 3, out, 1, dims);
                float[] gi = f32(in[0]), gh = f32(in[1]), hp = f32(in[2]), h = CpuStorage.out(out[0]).f;
                int hid = dims[1];
                rows(dims[0], (long) dims[0] * hid * 30, (r0, r1) -> pw.gruForward(gi, gh, hp, h, hid, r0, r1));
            });
            case "gru_step_backward" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 4, out, 3, dims);
                float[] gi = f32(in[0]), gh = f32(in[1]), hp = f32(in[2]), dh = f32(in[3]);
                float[] dgi = CpuStorage.out(out[0]).f, dgh = CpuStorage.out(out[1]).f, dhp = CpuStorage.out(out[2]).f;
                int hid = dims[1];
                rows(dims[0], (long) dims[0] * hid * 50, (r0, r1) -> pw.gruBackward(gi, gh, hp, dh, dgi, dgh, dhp, hid, r0, r1));
            });
            case "softmax" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 1, out, 1, dims);
                float[] x = f32(in[0]), y = CpuStorage.out(out[0]).f;
                int cols = dims[1];
                rows(dims[0], (long) dims[0] * cols * 20, (r0, r1) -> pw.softmax(x, y, cols, r0, r1));
            });
            case "tanh_backward" -> java.util.Optional.of((in, out, dims) -> { // dx = g (1 - y^2), y = tanh(x)
                checkFused(name, in, 2, out, 1, dims);
                float[] y = f32(in[0]), g = f32(in[1]), dx = CpuStorage.out(out[0]).f;
                chunks(dims[0] * dims[1], (i0, i1) -> {
                    for (int i = i0; i < i1; i++) {
                        dx[i] = g[i] * (1f - y[i] * y[i]);
                    }
                });
            });
            case "gelu_backward" -> java.util.Optional.of((in, out, dims) -> { // dx = g GELU'(x)
                checkFused(name, in, 2, out, 1, dims);
                float[] x = f32(in[0]), g = f32(in[1]), dx = CpuStorage.out(out[0]).f;
                chunks(dims[0] * dims[1], (i0, i1) -> pw.geluBackward(x, g, dx, i0, i1));
            });
            case "softmax_backward" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 2, out, 1, dims);
                float[] y = f32(in[0]), dy = f32(in[1]), dx = CpuStorage.out(out[0]).f;
                int cols = dims[1];
                rows(dims[0], (long) dims[0] * cols * 4, (r0, r1) -> pw.softmaxBackward(y, dy, dx, cols, r0, r1));
            });
            case "layer_norm" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 3, out, 1, dims);
                float[] x = f32(in[0]), gamma = f32(in[1]), beta = f32(in[2]), y = CpuStorage.out(out[0]).f;
                int cols = dims[1];
                float eps = layerNormEps(dims);
                rows(dims[0], (long) dims[0] * cols * 8, (r0, r1) -> pw.layerNorm(x, gamma, beta, y, cols, eps, r0, r1));
            });
            case "layer_norm_backward" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 3, out, 3, dims);
                layerNormBackward(f32(in[0]), f32(in[1]), f32(in[2]), CpuStorage.out(out[0]).f, CpuStorage.out(out[1]).f,
                        CpuStorage.out(out[2]).f, dims[0], dims[1], layerNormEps(dims));
            });
            case "cross_entropy" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 2, out, 2, dims);
                float[] x = f32(in[0]), loss = CpuStorage.out(out[0]).f, lse = CpuStorage.out(out[1]).f;
                int[] t = targets(name, in[1], dims);
                int cols = dims[1];
                rows(dims[0], (long) dims[0] * cols * 20, (r0, r1) -> pw.crossEntropy(x, t, loss, lse, cols, r0, r1));
            });
            case "cross_entropy_backward" -> java.util.Optional.of((in, out, dims) -> {
                checkFused(name, in, 4, out, 1, dims);
                float[] x = f32(in[0]), lse = f32(in[2]), d = f32(in[3]), dx = CpuStorage.out(out[0]).f;
                int[] t = targets(name, in[1], dims);
                int cols = dims[1];
                rows(dims[0], (long) dims[0] * cols * 20, (r0, r1) -> pw.crossEntropyBackward(x, t, lse, d, dx, cols, r0, r1));
            });
            case "attention" -> java.util.Optional.of((in, out, dims) -> {
                CausalAttention.Dims m = attentionDims(name, in, 3, out, 2, dims);
                float[] q = f32(in[0]), k = f32(in[1]), v = f32(in[2]);
                float[] y = CpuStorage.out(out[0]).f, p = CpuStorage.out(out[1]).f;
                rows(m.items(), m.items() * m.cost(), (i0, i1) -> attention.forward(q, k, v, y, p, m, i0, i1));
            });
            case "attention_backward" -> java.util.Optional.of((in, out, dims) -> {
                CausalAttention.Dims m = attentionDims(name, in, 5, out, 3, dims);
                float[] q = f32(in[0]), k = f32(in[1]), v = f32(in[2]), p = f32(in[3]), dy = f32(in[4]);
                float[] dq = CpuStorage.out(out[0]).f, dk = CpuStorage.out(out[1]).f, dv = CpuStorage.out(out[2]).f;
                rows(m.items(), 2 * m.items() * m.cost(), (i0, i1) -> attention.backward(q, k, v, p, dy, dq, dk, dv, m, i0, i1));
            });
            default -> java.util.Optional.empty();
        };
    }

    /** The attention kernels' dims [B, T, S, H, D], checked against the storages' sizes. */
    private CausalAttention.Dims attentionDims(String name, Storage[] in, int nIn, Storage[] out, int nOut, int[] dims) {
        if (in.length != nIn || out.length != nOut || dims.length != 5) {
            throw new CellarException("fused kernel " + name + " takes " + nIn + " inputs, " + nOut + " outputs and dims"
                    + " [B, T, S, H, D]; got " + in.length + ", " + out.length + " and " + java.util.Arrays.toString(dims));
        }
        int b = dims[0], t = dims[1], s = dims[2], h = dims[3], d = dims[4];
        if (b < 0 || t < 0 || s < t || h <= 0 || d < 0 || d % h != 0) {
            throw new CellarException("fused kernel " + name + " needs B, T >= 0, S >= T, H > 0 and D a multiple of H;"
                    + " got dims " + java.util.Arrays.toString(dims));
        }
        long qn = (long) b * t * d, kn = (long) b * s * d, pn = (long) b * h * t * s;
        checkSizes(name, "input", in, nIn == 3 ? new long[] {qn, kn, kn} : new long[] {qn, kn, kn, pn, qn}, dims);
        checkSizes(name, "output", out, nOut == 2 ? new long[] {qn, pn} : new long[] {qn, kn, kn}, dims);
        return new CausalAttention.Dims(dims, gemm.lanes());
    }

    /** Each storage's element count against {@code want}, or an error naming the kernel, the operand and the dims. */
    private static void checkSizes(String name, String what, Storage[] ss, long[] want, int[] dims) {
        for (int i = 0; i < ss.length; i++) {
            if (ss[i].size() != want[i]) {
                throw new CellarException("fused kernel " + name + " " + what + " " + i + " has " + ss[i].size()
                        + " elements; dims " + java.util.Arrays.toString(dims) + " need " + want[i]);
            }
        }
    }

    /** eps = 10^-dims[2] (10^-5 without a third dim), as the layer_norm kernels take it. */
    private static float layerNormEps(int[] dims) {
        return (float) Math.pow(10, -(dims.length > 2 ? dims[2] : 5));
    }

    /**
     * dx, dgamma, dbeta of {@link Pointwise#layerNorm} from x, gamma and dy: with xhat = (x - mean) rstd and g = dy gamma,
     * dx = rstd (g - mean(g) - xhat mean(g xhat)), dgamma = sum over rows of dy xhat, dbeta = sum over rows of dy. The
     * rows are split over the pool, each part summing dgamma and dbeta into its own buffer.
     */
    private void layerNormBackward(float[] x, float[] gamma, float[] dy, float[] dx, float[] dgamma, float[] dbeta, int rows,
                                   int cols, float eps) {
        int tasks = (long) rows * cols * 12 < PARALLEL_FMAS || rows < 2 ? 1 : Math.min(threads, rows);
        float[][] part = new float[tasks][2 * cols];
        java.util.function.IntConsumer body = t -> pw.layerNormBackward(x, gamma, dy, dx, part[t], new float[cols], cols, eps,
                rows * t / tasks, rows * (t + 1) / tasks);
        List<Future<?>> fs = new ArrayList<>(tasks - 1);
        for (int t = 1; t < tasks; t++) {
            int task = t;
            fs.add(pool.submit(() -> body.accept(task)));
        }
        join(fs, () -> body.accept(0), "a fused kernel");
        for (int j = 0; j < cols; j++) {
            float g = 0, b = 0;
            for (float[] acc : part) {
                g += acc[j];
                b += acc[cols + j];
            }
            dgamma[j] = g;
            dbeta[j] = b;
        }
    }

    /** The I32 targets of a cross_entropy kernel, each checked to be a column of the (N, V) logits. */
    private static int[] targets(String name, Storage s, int[] dims) {
        CpuStorage c = CpuStorage.of(s);
        if (c.dtype != DType.I32 || c.size < dims[0]) {
            throw new CellarException("fused " + name + " takes " + dims[0] + " I32 targets, not " + c.size + " " + c.dtype);
        }
        for (int r = 0; r < dims[0]; r++) {
            if (c.i[r] < 0 || c.i[r] >= dims[1]) {
                throw new CellarException("fused " + name + ": target " + c.i[r] + " of row " + r + " is outside 0.." + (dims[1] - 1));
            }
        }
        return c.i;
    }

    private static float[] f32(Storage s) {
        CpuStorage c = CpuStorage.of(s);
        if (c.dtype != DType.F32) {
            throw new CellarException("fused cpu kernels take F32 storages, not " + c.dtype);
        }
        return c.f;
    }

    private static void checkFused(String name, Storage[] in, int nIn, Storage[] out, int nOut, int[] dims) {
        if (in.length != nIn || out.length != nOut || dims.length < 2 || dims[0] < 0 || dims[1] < 0) {
            throw new CellarException("fused kernel " + name + " takes " + nIn + " inputs, " + nOut + " outputs and dims"
                    + " [B, H]; got " + in.length + ", " + out.length + " and " + java.util.Arrays.toString(dims));
        }
    }

    private interface RowRange {
        void run(int r0, int r1);
    }

    /** {@code body} over [0, n) in chunks of 4,096 split across the pool when n is large. */
    private void chunks(int n, RowRange body) {
        split(n, 4096, (long) n * 20, body);
    }

    /** {@code body} over [0, rows), split across the pool when there is enough work ({@code cost} in rough flops). */
    private void rows(int rows, long cost, RowRange body) {
        split(rows, 1, cost, body);
    }

    /**
     * Threads to split a kernel over: the pool's, and for a replica (single-threaded) two while another replica's
     * thread waits for work. Only kernels whose bits do not depend on the split ask: GEMMs and {@link #split}'s
     * (elementwise ones and those over whole rows); layerNormBackward, whose parts sum columns into buffers of their
     * own, keeps to {@code threads}.
     */
    private int width() {
        return help != null && help.idle() ? 2 : threads;
    }

    /** Where the parts after the first of a {@link #width} split go. */
    private ExecutorService executor(int width) {
        return help != null && width > threads ? help : pool;
    }

    /**
     * {@code body} over [0, n) in up to {@link #width} parts, one per thread, each bound a multiple of {@code grain}
     * (or n). The parts go to the pool (or a replica's helpers) as {@link Part}s and this thread runs the first
     * itself, with no lambda of split's own in between: every call level here is one less for the kernel's own vector
     * code to fit under C2's inlining depth (see VectorPointwise.expVectors).
     */
    private void split(int n, int grain, long cost, RowRange body) {
        int width = width();
        ExecutorService exec = executor(width);
        int units = (int) (((long) n + grain - 1) / grain);
        int tasks = cost < PARALLEL_FMAS || units < 2 ? 1 : Math.min(width, units);
        if (tasks <= 1) {
            body.run(0, n);
            return;
        }
        List<Future<?>> fs = new ArrayList<>(tasks - 1);
        for (int t = 1; t < tasks; t++) {
            fs.add(exec.submit(new Part(body, bound(n, grain, units, t, tasks), bound(n, grain, units, t + 1, tasks))));
        }
        Throwable failure = null;
        try {
            body.run(0, bound(n, grain, units, 1, tasks));
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        await(fs, failure, "a kernel");
    }

    /** Part t of {@code tasks} ends here: units t / tasks of {@code grain} each, at most n. */
    private static int bound(int n, int grain, int units, int t, int tasks) {
        return (int) Math.min(n, (long) units * t / tasks * grain);
    }

    /** One part of a {@link #split}, a Callable so that the pool's FutureTask runs it without an adapter. */
    private record Part(RowRange body, int r0, int r1) implements Callable<Void> {
        @Override
        public Void call() {
            body.run(r0, r1);
            return null;
        }
    }
}
