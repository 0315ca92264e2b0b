package dev.cellar.kernels.opencl.internal;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.FusedKernel;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;
import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;
import org.jocl.cl_program;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * OpenCL kernels on one device. Programs are built once per context (one per floating dtype) and their kernels
 * cached; storages stay on the device and only {@code write}/{@code read*} cross to the host. One in-order queue,
 * calls serialised (cl_kernel arguments are not thread-safe).
 *
 * <p>Fused kernels ({@link #fused}), all in the dtype of their inputs:
 * <ul>
 * <li>{@code lstm_step}: inputs [gates (B, 4H) pre-activations in PyTorch order i, f, g, o; c_prev (B, H)],
 * outputs [h (B, H), c (B, H)], dims [B, H]. c = sigmoid(f) c_prev + sigmoid(i) tanh(g); h = sigmoid(o) tanh(c).</li>
 * <li>{@code gru_step}: inputs [gi (B, 3H) = x W_ih^T + b_ih; gh (B, 3H) = h W_hh^T + b_hh, both in PyTorch order
 * r, z, n; h_prev (B, H)], outputs [h (B, H)], dims [B, H]. r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
 * n = tanh(gi_n + r gh_n), h = (1 - z) n + z h_prev.</li>
 * <li>{@code softmax}: inputs [x (rows, cols)], outputs [y (rows, cols)], dims [rows, cols]; y = exp(x - max) / sum
 * along the last axis.</li>
 * <li>{@code layer_norm}: inputs [x (rows, cols), gamma (cols), beta (cols)], outputs [y (rows, cols)],
 * dims [rows, cols] or [rows, cols, epsExponent] (eps = 10^-epsExponent, default 5 i.e. 1e-5);
 * y = (x - mean) / sqrt(var + eps) gamma + beta with the biased variance over the last axis.</li>
 * </ul>
 */
public final class ClKernels implements Kernels, AutoCloseable {
    private final ClDevice device;
    private final cl_context context;
    private final cl_command_queue queue;
    private final Map<DType, cl_program> programs = new EnumMap<>(DType.class);
    private final Map<String, cl_kernel> kernels = new HashMap<>();
    private final GemmTiles tiles;
    private final long wg;

    /** GEMM tile sizes; the work-group is (tsn / wptn, tsm / wptm). */
    /**
     * GEMM blocking. On GPUs: local-memory tiles tsm x tsn x tsk with a wptm x wptn register block per work-item. On CPU
     * devices ({@code registerBlocked}): kernel {@code gemm_rb}, wptm rows x wptn (the vector width) columns per
     * work-item and tsm x tsn per work-group, no local memory.
     */
    record GemmTiles(int tsm, int tsn, int tsk, int wptm, int wptn, boolean registerBlocked) {
        int threads() {
            return (tsm / wptm) * (tsn / wptn);
        }

        String defines() {
            return " -DTSM=" + tsm + " -DTSN=" + tsn + " -DTSK=" + tsk + " -DWPTM=" + wptm + " -DWPTN=" + wptn
                    + " -DRM=" + (registerBlocked ? wptm : 8) + " -DVW=" + (registerBlocked ? wptn : 8);
        }

        static GemmTiles forDevice(ClDevice d) {
            if (!d.gpu()) {
                // 8 rows x 16 lanes: 8 accumulators of one AVX-512 register each (two AVX2 registers: still under 32)
                return new GemmTiles(64, 64, 0, 8, 16, true);
            }
            // 64x64 tiles with a 4x4 register block need 256 work-items and 2 * 16 * 65 * 8 bytes of local memory
            if (d.maxWorkGroupSize() >= 256 && d.localMemBytes() >= 32 * 1024) {
                return new GemmTiles(64, 64, 16, 4, 4, false);
            }
            return new GemmTiles(32, 32, 16, 4, 4, false);
        }
    }

    public ClKernels(ClDevice device) {
        this.device = device;
        this.tiles = GemmTiles.forDevice(device);
        this.wg = Math.min(256, device.maxWorkGroupSize());
        CL.setExceptionsEnabled(true);
        org.jocl.cl_context_properties props = new org.jocl.cl_context_properties();
        props.addProperty(CL.CL_CONTEXT_PLATFORM, device.platform());
        context = CL.clCreateContext(props, 1, new org.jocl.cl_device_id[]{device.device()}, null, null, null);
        queue = CL.clCreateCommandQueue(context, device.device(), 0, null); // 1.2 call: works on 1.2 and 2.x drivers
        build(DType.F32, "-DT=float");
        if (device.fp64()) {
            build(DType.F64, "-DT=double -DUSE_FP64");
        }
    }

    public ClDevice device() {
        return device;
    }

    public String tileDescription() {
        if (tiles.registerBlocked()) {
            return "gemm register-blocked " + tiles.wptm() + "x" + tiles.wptn() + " per item, " + tiles.tsm() + "x"
                    + tiles.tsn() + " per group";
        }
        return "gemm tiles " + tiles.tsm() + "x" + tiles.tsn() + "x" + tiles.tsk() + ", block " + tiles.wptm() + "x"
                + tiles.wptn();
    }

    private static String source() {
        try (InputStream in = ClKernels.class.getResourceAsStream("cellar.cl")) {
            if (in == null) {
                throw new CellarException("the OpenCL source cellar.cl is missing from the kernels-opencl jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new CellarException("cannot read cellar.cl: " + e.getMessage(), e);
        }
    }

    private void build(DType dtype, String options) {
        cl_program p = CL.clCreateProgramWithSource(context, 1, new String[]{source()}, null, null);
        String opts = options + tiles.defines() + " -cl-mad-enable";
        try {
            CL.clBuildProgram(p, 0, null, opts, null, null);
        } catch (org.jocl.CLException e) {
            long[] size = new long[1];
            CL.clGetProgramBuildInfo(p, device.device(), CL.CL_PROGRAM_BUILD_LOG, 0, null, size);
            byte[] log = new byte[(int) size[0]];
            CL.clGetProgramBuildInfo(p, device.device(), CL.CL_PROGRAM_BUILD_LOG, log.length, Pointer.to(log), null);
            throw new CellarException("OpenCL build failed on " + device.name() + " with " + opts + ":\n"
                    + new String(log, StandardCharsets.UTF_8), e);
        }
        programs.put(dtype, p);
    }

    private cl_kernel kernel(DType dtype, String name) {
        if (dtype == DType.I32) {
            dtype = DType.F32;
        }
        cl_program p = programs.get(dtype);
        if (p == null) {
            throw noFp64();
        }
        return kernels.computeIfAbsent(dtype + "/" + name, k -> CL.clCreateKernel(p, name, null));
    }

    private CellarException noFp64() {
        return new CellarException("F64 needs cl_khr_fp64, which " + device.name()
                + " lacks; use F32 on this device or --backend cpu for F64 (gradient checks)");
    }

    // ------------------------------------------------------------------ memory
    static ClStorage of(Storage s) {
        if (s instanceof ClStorage c) {
            return c;
        }
        throw new CellarException("storage " + s + " was not allocated by the opencl backend");
    }

    @Override
    public synchronized Storage allocate(DType dtype, int size) {
        if (size < 0) {
            throw new CellarException("cannot allocate " + size + " elements");
        }
        if (dtype == DType.F64 && !device.fp64()) {
            throw noFp64();
        }
        if (size == 0) {
            return new ClStorage(this, dtype, 0, null);
        }
        long bytes = (long) size * dtype.byteSize();
        cl_mem mem = CL.clCreateBuffer(context, CL.CL_MEM_READ_WRITE, bytes, null, null);
        ClStorage s = new ClStorage(this, dtype, size, mem);
        // 0.0 has all bits zero, so the float fill also zeroes I32 buffers
        run(kernel(dtype, "fill_zero"), new long[]{size}, mem, size);
        return s;
    }

    private static void checkLength(ClStorage dst, int n) {
        if (dst.size != n) {
            throw new CellarException("write of " + n + " values into a storage of " + dst.size);
        }
    }

    private void upload(ClStorage s, Pointer p) {
        if (s.size > 0) {
            CL.clEnqueueWriteBuffer(queue, s.mem(), CL.CL_TRUE, 0, (long) s.size * s.dtype.byteSize(), p, 0, null, null);
        }
    }

    private void download(ClStorage s, Pointer p) {
        if (s.size > 0) {
            CL.clEnqueueReadBuffer(queue, s.mem(), CL.CL_TRUE, 0, (long) s.size * s.dtype.byteSize(), p, 0, null, null);
        }
    }

    @Override
    public synchronized void write(Storage dst, double[] src) {
        ClStorage s = of(dst);
        checkLength(s, src.length);
        switch (s.dtype) {
            case F64 -> upload(s, Pointer.to(src));
            case F32 -> {
                float[] f = new float[src.length];
                for (int k = 0; k < f.length; k++) {
                    f[k] = (float) src[k];
                }
                upload(s, Pointer.to(f));
            }
            case I32 -> {
                int[] v = new int[src.length];
                for (int k = 0; k < v.length; k++) {
                    v[k] = (int) src[k];
                }
                upload(s, Pointer.to(v));
            }
        }
    }

    @Override
    public synchronized void write(Storage dst, float[] src) {
        ClStorage s = of(dst);
        checkLength(s, src.length);
        if (s.dtype == DType.F32) {
            upload(s, Pointer.to(src));
        } else {
            double[] d = new double[src.length];
            for (int k = 0; k < d.length; k++) {
                d[k] = src[k];
            }
            write(dst, d);
        }
    }

    @Override
    public synchronized void write(Storage dst, int[] src) {
        ClStorage s = of(dst);
        checkLength(s, src.length);
        if (s.dtype == DType.I32) {
            upload(s, Pointer.to(src));
        } else {
            double[] d = new double[src.length];
            for (int k = 0; k < d.length; k++) {
                d[k] = src[k];
            }
            write(dst, d);
        }
    }

    @Override
    public synchronized double[] readDoubles(Storage src) {
        ClStorage s = of(src);
        double[] out = new double[s.size];
        switch (s.dtype) {
            case F64 -> download(s, Pointer.to(out));
            case F32 -> {
                float[] f = new float[s.size];
                download(s, Pointer.to(f));
                for (int k = 0; k < f.length; k++) {
                    out[k] = f[k];
                }
            }
            case I32 -> {
                int[] v = new int[s.size];
                download(s, Pointer.to(v));
                for (int k = 0; k < v.length; k++) {
                    out[k] = v[k];
                }
            }
        }
        return out;
    }

    @Override
    public synchronized float[] readFloats(Storage src) {
        ClStorage s = of(src);
        if (s.dtype == DType.F32) {
            float[] f = new float[s.size];
            download(s, Pointer.to(f));
            return f;
        }
        double[] d = readDoubles(src);
        float[] f = new float[d.length];
        for (int k = 0; k < f.length; k++) {
            f[k] = (float) d[k];
        }
        return f;
    }

    @Override
    public synchronized int[] readInts(Storage src) {
        ClStorage s = of(src);
        if (s.dtype == DType.I32) {
            int[] v = new int[s.size];
            download(s, Pointer.to(v));
            return v;
        }
        double[] d = readDoubles(src);
        int[] v = new int[d.length];
        for (int k = 0; k < v.length; k++) {
            v[k] = (int) d[k];
        }
        return v;
    }

    // ------------------------------------------------------------------ launching
    /** Sets the arguments (cl_mem, Integer, Double/Float as T of the kernel's program, int[8]) and enqueues. */
    private final cl_mem[] scratch = new cl_mem[2];
    private final long[] scratchBytes = new long[2];

    /** Device buffer {@code slot} with room for {@code elements} of {@code t}, reused across calls (calls are synchronized). */
    private cl_mem scratch(int slot, DType t, long elements) {
        long bytes = Math.max(1, elements) * (t == DType.F64 ? 8 : 4);
        if (scratch[slot] == null || scratchBytes[slot] < bytes) {
            if (scratch[slot] != null) {
                CL.clReleaseMemObject(scratch[slot]);
            }
            scratchBytes[slot] = Math.max(bytes, scratchBytes[slot] * 2);
            scratch[slot] = CL.clCreateBuffer(context, CL.CL_MEM_READ_WRITE, scratchBytes[slot], null, null);
        }
        return scratch[slot];
    }

    private void run(cl_kernel k, long[] global, Object... args) {
        run(k, global, null, args);
    }

    private void run(cl_kernel k, long[] global, long[] local, Object... args) {
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a instanceof cl_mem m) {
                CL.clSetKernelArg(k, i, Sizeof.cl_mem, Pointer.to(m));
            } else if (a == null) {
                // a zero-element storage: never dereferenced because every launch guards by n
                CL.clSetKernelArg(k, i, Sizeof.cl_mem, null);
            } else if (a instanceof Integer v) {
                CL.clSetKernelArg(k, i, Sizeof.cl_int, Pointer.to(new int[]{v}));
            } else if (a instanceof Double v) {
                CL.clSetKernelArg(k, i, Sizeof.cl_double, Pointer.to(new double[]{v}));
            } else if (a instanceof Float v) {
                CL.clSetKernelArg(k, i, Sizeof.cl_float, Pointer.to(new float[]{v}));
            } else if (a instanceof int[] v) {
                CL.clSetKernelArg(k, i, (long) Sizeof.cl_int * v.length, Pointer.to(v));
            } else {
                throw new IllegalArgumentException("kernel argument " + a);
            }
        }
        long[] g = global.clone();
        long[] l = local;
        if (l == null && g.length == 1) {
            long ls = Math.min(wg, 64);
            g[0] = (g[0] + ls - 1) / ls * ls;
            l = new long[]{ls};
        }
        CL.clEnqueueNDRangeKernel(queue, k, g.length, null, g, l, 0, null, null);
    }

    private static DType floating(ClStorage... ss) {
        DType t = ss[0].dtype;
        for (ClStorage s : ss) {
            if (s.dtype != t || !t.isFloating()) {
                throw new CellarException("opencl kernels need one floating dtype, got " + s.dtype + " and " + t);
            }
        }
        return t;
    }

    private static int[] pad8(int[] v, String what) {
        if (v.length > 8) {
            throw new CellarException(what + " of rank " + v.length + " exceeds the opencl limit of 8 dimensions");
        }
        int[] out = new int[8];
        System.arraycopy(v, 0, out, 0, v.length);
        for (int r = v.length; r < 8; r++) {
            out[r] = what.equals("shape") ? 1 : 0;
        }
        return out;
    }

    // ------------------------------------------------------------------ compute
    @Override
    public synchronized void unary(Unary op, Storage x, Storage out, int n) {
        ClStorage a = of(x);
        ClStorage o = of(out);
        DType t = floating(a, o);
        if (n <= 0) {
            return;
        }
        run(kernel(t, "unary"), new long[]{n}, op.ordinal(), a.mem(), o.mem(), n);
    }

    @Override
    public synchronized void binary(Binary op, Storage a, int[] aStrides, Storage b, int[] bStrides, Storage out, Shape shape) {
        ClStorage sa = of(a);
        ClStorage sb = of(b);
        ClStorage so = of(out);
        DType t = floating(sa, sb, so);
        int n = shape.size();
        if (n == 0) {
            return;
        }
        int[] dims = shape.dims();
        int[] contiguous = shape.strides();
        int aStep = step(aStrides, contiguous, dims);
        int bStep = step(bStrides, contiguous, dims);
        if (aStep >= 0 && bStep >= 0) {
            run(kernel(t, "binary_flat"), new long[]{n}, op.ordinal(), sa.mem(), aStep, sb.mem(), bStep, so.mem(), n);
        } else {
            run(kernel(t, "binary_strided"), new long[]{n}, op.ordinal(), sa.mem(), pad8(aStrides, "strides"), sb.mem(),
                    pad8(bStrides, "strides"), so.mem(), pad8(dims, "shape"), dims.length, n);
        }
    }

    /** 1 when strides are contiguous for dims, 0 when all zero (a broadcast scalar), else -1. */
    private static int step(int[] strides, int[] contiguous, int[] dims) {
        boolean zero = true;
        boolean same = true;
        for (int r = 0; r < dims.length; r++) {
            if (dims[r] == 1) {
                continue;
            }
            zero &= strides[r] == 0;
            same &= strides[r] == contiguous[r];
        }
        return same ? 1 : zero ? 0 : -1;
    }

    @Override
    public synchronized void reduce(Reduce op, Storage x, int outer, int len, int inner, Storage out) {
        ClStorage sx = of(x);
        ClStorage so = of(out);
        DType t = floating(sx, so);
        int n = outer * inner;
        if (n == 0) {
            return;
        }
        run(kernel(t, "reduce"), new long[]{n}, op.ordinal(), sx.mem(), outer, len, inner, so.mem());
    }

    @Override
    public synchronized void matmul(MatmulSpec s, Storage a, Storage b, Storage c) {
        ClStorage sa = of(a);
        ClStorage sb = of(b);
        ClStorage sc = of(c);
        DType t = floating(sa, sb, sc);
        if (s.batch() == 0 || s.m() == 0 || s.n() == 0) {
            return;
        }
        if (s.k() == 0) {
            if (!s.accumulate()) {
                run(kernel(t, "fill_zero"), new long[]{(long) s.batch() * s.m() * s.n()}, sc.mem(), s.batch() * s.m() * s.n());
            }
            return;
        }
        if (tiles.registerBlocked()) {
            int rm = tiles.wptm(), vw = tiles.wptn();
            int mb = (s.m() + rm - 1) / rm, nb = (s.n() + vw - 1) / vw;
            cl_mem ap = scratch(0, t, (long) s.batch() * mb * rm * s.k());
            cl_mem bp = scratch(1, t, (long) s.batch() * nb * vw * s.k());
            run(kernel(t, "pack_a"), new long[]{s.k(), (long) mb * rm, s.batch()}, null,
                    sa.mem(), ap, s.m(), s.k(), s.transA() ? 1 : 0, s.strideA(), mb);
            run(kernel(t, "pack_b"), new long[]{(long) nb * vw, s.k(), s.batch()}, null,
                    sb.mem(), bp, s.n(), s.k(), s.transB() ? 1 : 0, s.strideB(), nb);
            long lx = tiles.tsn() / vw;
            long ly = tiles.tsm() / rm;
            run(kernel(t, "gemm_rb"), new long[]{(nb + lx - 1) / lx * lx, (mb + ly - 1) / ly * ly, s.batch()},
                    new long[]{lx, ly, 1}, s.m(), s.n(), s.k(), s.accumulate() ? 1 : 0, mb, nb, ap, bp, sc.mem());
            return;
        }
        long lx = tiles.tsn() / tiles.wptn();
        long ly = tiles.tsm() / tiles.wptm();
        long gx = (s.n() + tiles.tsn() - 1) / tiles.tsn() * lx;
        long gy = (s.m() + tiles.tsm() - 1) / tiles.tsm() * ly;
        // C (m, n) = op(A) (m, k) @ op(B) (k, n) per batch
        run(kernel(t, "gemm"), new long[]{gx, gy, s.batch()}, new long[]{lx, ly, 1},
                s.m(), s.n(), s.k(), s.transA() ? 1 : 0, s.transB() ? 1 : 0, s.strideA(), s.strideB(),
                s.accumulate() ? 1 : 0, sa.mem(), sb.mem(), sc.mem());
    }

    @Override
    public synchronized void copy(Storage src, int srcOffset, int[] srcStrides, Storage dst, int dstOffset, int[] dstStrides, Shape shape) {
        ClStorage s = of(src);
        ClStorage d = of(dst);
        if (s.dtype != d.dtype) {
            throw new CellarException("copy from " + s.dtype + " to " + d.dtype + ": dtypes must match");
        }
        int n = shape.size();
        if (n == 0) {
            return;
        }
        int[] dims = shape.dims();
        String name = s.dtype.byteSize() == 8 ? "copy_u64" : "copy_u32";
        run(kernel(DType.F32, name), new long[]{n}, s.mem(), srcOffset, pad8(srcStrides, "strides"), d.mem(), dstOffset,
                pad8(dstStrides, "strides"), pad8(dims, "shape"), dims.length, n);
    }

    private int[] checkedIds(ClStorage ids, int rows, int tableRows) {
        if (ids.dtype != DType.I32) {
            throw new CellarException("ids must be I32, got " + ids.dtype);
        }
        int[] v = readInts(ids);
        for (int r = 0; r < rows; r++) {
            if (v[r] < 0 || v[r] >= tableRows) {
                throw new CellarException("id " + v[r] + " at position " + r + " is outside the table of " + tableRows + " rows");
            }
        }
        return v;
    }

    @Override
    public synchronized void gather(Storage table, Storage ids, Storage out, int rows, int width) {
        ClStorage t = of(table);
        ClStorage ix = of(ids);
        ClStorage o = of(out);
        DType dt = floating(t, o);
        int tableRows = width == 0 ? 0 : t.size / width;
        checkedIds(ix, rows, tableRows);
        if (rows == 0 || width == 0) {
            return;
        }
        long lx = Math.min(64, wg);
        run(kernel(dt, "gather"), new long[]{(width + lx - 1) / lx * lx, rows}, new long[]{lx, 1},
                t.mem(), ix.mem(), o.mem(), rows, width);
    }

    @Override
    public synchronized void scatterAdd(Storage src, Storage ids, Storage table, int rows, int width) {
        ClStorage s = of(src);
        ClStorage ix = of(ids);
        ClStorage t = of(table);
        DType dt = floating(s, t);
        int tableRows = width == 0 ? 0 : t.size / width;
        checkedIds(ix, rows, tableRows);
        if (rows == 0 || width == 0) {
            return;
        }
        run(kernel(dt, "scatter_add"), new long[]{width}, s.mem(), ix.mem(), t.mem(), rows, width);
    }

    // ------------------------------------------------------------------ fused
    @Override
    public Optional<FusedKernel> fused(String name) {
        return switch (name) {
            case "lstm_step" -> Optional.of((in, out, dims) -> fusedLstm(in, out, dims));
            case "gru_step" -> Optional.of((in, out, dims) -> fusedGru(in, out, dims));
            case "lstm_step_backward" -> Optional.of((in, out, dims) -> fusedLstmBackward(in, out, dims));
            case "gru_step_backward" -> Optional.of((in, out, dims) -> fusedGruBackward(in, out, dims));
            case "softmax" -> Optional.of((in, out, dims) -> fusedSoftmax(in, out, dims));
            case "layer_norm" -> Optional.of((in, out, dims) -> fusedLayerNorm(in, out, dims));
            default -> Optional.empty();
        };
    }

    private static void expect(String name, Storage[] in, int nin, Storage[] out, int nout, int[] dims, int ndims) {
        if (in.length != nin || out.length != nout || dims.length < ndims) {
            throw new CellarException(name + " takes " + nin + " inputs, " + nout + " outputs and " + ndims
                    + " dims, got " + in.length + ", " + out.length + " and " + dims.length);
        }
    }

    private static void size(String name, String what, Storage s, long expected) {
        if (s.size() != expected) {
            throw new CellarException(name + ": " + what + " has " + s.size() + " elements, expected " + expected);
        }
    }

    private synchronized void fusedLstm(Storage[] in, Storage[] out, int[] dims) {
        expect("lstm_step", in, 2, out, 2, dims, 2);
        int b = dims[0];
        int h = dims[1];
        size("lstm_step", "gates (B, 4H)", in[0], 4L * b * h);
        size("lstm_step", "c_prev (B, H)", in[1], (long) b * h);
        size("lstm_step", "h (B, H)", out[0], (long) b * h);
        size("lstm_step", "c (B, H)", out[1], (long) b * h);
        DType t = floating(of(in[0]), of(in[1]), of(out[0]), of(out[1]));
        if (b * h > 0) {
            run(kernel(t, "lstm_step"), new long[]{(long) b * h}, of(in[0]).mem(), of(in[1]).mem(), of(out[0]).mem(),
                    of(out[1]).mem(), b, h);
        }
    }

    private synchronized void fusedLstmBackward(Storage[] in, Storage[] out, int[] dims) {
        String name = "lstm_step_backward";
        expect(name, in, 5, out, 2, dims, 2);
        int b = dims[0];
        int h = dims[1];
        long bh = (long) b * h;
        size(name, "gates (B, 4H)", in[0], 4 * bh);
        size(name, "c_prev (B, H)", in[1], bh);
        size(name, "c (B, H)", in[2], bh);
        size(name, "dh (B, H)", in[3], bh);
        size(name, "dc (B, H)", in[4], bh);
        size(name, "dgates (B, 4H)", out[0], 4 * bh);
        size(name, "dc_prev (B, H)", out[1], bh);
        DType t = floating(of(in[0]), of(in[1]), of(in[2]), of(in[3]), of(in[4]), of(out[0]), of(out[1]));
        if (bh > 0) {
            run(kernel(t, name), new long[]{bh}, of(in[0]).mem(), of(in[1]).mem(), of(in[2]).mem(), of(in[3]).mem(),
                    of(in[4]).mem(), of(out[0]).mem(), of(out[1]).mem(), b, h);
        }
    }

    private synchronized void fusedGruBackward(Storage[] in, Storage[] out, int[] dims) {
        String name = "gru_step_backward";
        expect(name, in, 4, out, 3, dims, 2);
        int b = dims[0];
        int h = dims[1];
        long bh = (long) b * h;
        size(name, "gi (B, 3H)", in[0], 3 * bh);
        size(name, "gh (B, 3H)", in[1], 3 * bh);
        size(name, "h_prev (B, H)", in[2], bh);
        size(name, "dh (B, H)", in[3], bh);
        size(name, "dgi (B, 3H)", out[0], 3 * bh);
        size(name, "dgh (B, 3H)", out[1], 3 * bh);
        size(name, "dh_prev (B, H)", out[2], bh);
        DType t = floating(of(in[0]), of(in[1]), of(in[2]), of(in[3]), of(out[0]), of(out[1]), of(out[2]));
        if (bh > 0) {
            run(kernel(t, name), new long[]{bh}, of(in[0]).mem(), of(in[1]).mem(), of(in[2]).mem(), of(in[3]).mem(),
                    of(out[0]).mem(), of(out[1]).mem(), of(out[2]).mem(), b, h);
        }
    }

    private synchronized void fusedGru(Storage[] in, Storage[] out, int[] dims) {
        expect("gru_step", in, 3, out, 1, dims, 2);
        int b = dims[0];
        int h = dims[1];
        size("gru_step", "gi (B, 3H)", in[0], 3L * b * h);
        size("gru_step", "gh (B, 3H)", in[1], 3L * b * h);
        size("gru_step", "h_prev (B, H)", in[2], (long) b * h);
        size("gru_step", "h (B, H)", out[0], (long) b * h);
        DType t = floating(of(in[0]), of(in[1]), of(in[2]), of(out[0]));
        if (b * h > 0) {
            run(kernel(t, "gru_step"), new long[]{(long) b * h}, of(in[0]).mem(), of(in[1]).mem(), of(in[2]).mem(),
                    of(out[0]).mem(), b, h);
        }
    }

    private synchronized void fusedSoftmax(Storage[] in, Storage[] out, int[] dims) {
        expect("softmax", in, 1, out, 1, dims, 2);
        size("softmax", "x (rows, cols)", in[0], (long) dims[0] * dims[1]);
        size("softmax", "y (rows, cols)", out[0], (long) dims[0] * dims[1]);
        DType t = floating(of(in[0]), of(out[0]));
        if (dims[0] * dims[1] > 0) {
            run(kernel(t, "softmax"), new long[]{dims[0]}, of(in[0]).mem(), of(out[0]).mem(), dims[0], dims[1]);
        }
    }

    private synchronized void fusedLayerNorm(Storage[] in, Storage[] out, int[] dims) {
        expect("layer_norm", in, 3, out, 1, dims, 2);
        int rows = dims[0];
        int cols = dims[1];
        double eps = Math.pow(10, -(dims.length > 2 ? dims[2] : 5));
        size("layer_norm", "x (rows, cols)", in[0], (long) rows * cols);
        size("layer_norm", "gamma (cols)", in[1], cols);
        size("layer_norm", "beta (cols)", in[2], cols);
        size("layer_norm", "y (rows, cols)", out[0], (long) rows * cols);
        DType t = floating(of(in[0]), of(in[1]), of(in[2]), of(out[0]));
        if (rows * cols > 0) {
            Object e = t == DType.F64 ? (Object) eps : (Object) (float) eps;
            run(kernel(t, "layer_norm"), new long[]{rows}, of(in[0]).mem(), of(in[1]).mem(), of(in[2]).mem(),
                    of(out[0]).mem(), rows, cols, e);
        }
    }

    /** Blocks until every enqueued kernel has finished (benchmarks). */
    public synchronized void finish() {
        CL.clFinish(queue);
    }

    @Override
    public synchronized void close() {
        for (cl_kernel k : kernels.values()) {
            CL.clReleaseKernel(k);
        }
        kernels.clear();
        for (cl_program p : programs.values()) {
            CL.clReleaseProgram(p);
        }
        programs.clear();
        for (int i = 0; i < scratch.length; i++) {
            if (scratch[i] != null) {
                CL.clReleaseMemObject(scratch[i]);
                scratch[i] = null;
            }
        }
        CL.clReleaseCommandQueue(queue);
        CL.clReleaseContext(context);
    }
}
