package dev.cellar.kernels.cpu;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.spi.Binary;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.MatmulSpec;
import dev.cellar.api.spi.Reduce;
import dev.cellar.api.spi.Storage;
import dev.cellar.api.spi.Unary;

/**
 * The specification: plain loops over doubles, one element at a time, results rounded to the storage dtype.
 * Every other backend is tested against this class.
 */
class ReferenceKernels implements Kernels {
    static final double GELU_C = Math.sqrt(2.0 / Math.PI);

    @Override
    public Storage allocate(DType dtype, int size) {
        if (size < 0) {
            throw new CellarException("cannot allocate " + size + " elements");
        }
        return new CpuStorage(dtype, size);
    }

    private static void checkLength(CpuStorage dst, int n) {
        if (dst.size != n) {
            throw new CellarException("write of " + n + " values into a storage of " + dst.size);
        }
    }

    @Override
    public void write(Storage dst, double[] src) {
        CpuStorage s = CpuStorage.out(dst);
        checkLength(s, src.length);
        for (int k = 0; k < src.length; k++) {
            s.set(k, src[k]);
        }
    }

    @Override
    public void zero(Storage dst) {
        CpuStorage s = CpuStorage.out(dst);
        switch (s.dtype) {
            case F32 -> java.util.Arrays.fill(s.f, 0, s.size, 0f);
            case F64 -> java.util.Arrays.fill(s.d, 0, s.size, 0d);
            case I32 -> java.util.Arrays.fill(s.i, 0, s.size, 0);
        }
    }

    @Override
    public void write(Storage dst, float[] src) {
        CpuStorage s = CpuStorage.out(dst);
        checkLength(s, src.length);
        for (int k = 0; k < src.length; k++) {
            s.set(k, src[k]);
        }
    }

    @Override
    public void write(Storage dst, int[] src) {
        CpuStorage s = CpuStorage.out(dst);
        checkLength(s, src.length);
        for (int k = 0; k < src.length; k++) {
            s.set(k, src[k]);
        }
    }

    @Override
    public double[] readDoubles(Storage src) {
        double[] out = new double[CpuStorage.of(src).size];
        readDoubles(src, out);
        return out;
    }

    @Override
    public void readDoubles(Storage src, double[] dst) {
        CpuStorage s = CpuStorage.of(src);
        if (dst.length < s.size) {
            throw new CellarException("readDoubles: " + s.size + " values do not fit in " + dst.length);
        }
        switch (s.dtype) {
            case F32 -> {
                float[] f = s.f;
                for (int k = 0; k < s.size; k++) {
                    dst[k] = f[k];
                }
            }
            case F64 -> System.arraycopy(s.d, 0, dst, 0, s.size);
            case I32 -> {
                for (int k = 0; k < s.size; k++) {
                    dst[k] = s.i[k];
                }
            }
        }
    }

    @Override
    public float[] readFloats(Storage src) {
        float[] out = new float[CpuStorage.of(src).size];
        readFloats(src, out);
        return out;
    }

    @Override
    public void readFloats(Storage src, float[] dst) {
        CpuStorage s = CpuStorage.of(src);
        if (dst.length < s.size) {
            throw new CellarException("readFloats: " + s.size + " values do not fit in " + dst.length);
        }
        if (s.f != null) {
            System.arraycopy(s.f, 0, dst, 0, s.size);
            return;
        }
        for (int k = 0; k < s.size; k++) {
            dst[k] = (float) s.get(k);
        }
    }

    @Override
    public int[] readInts(Storage src) {
        int[] out = new int[CpuStorage.of(src).size];
        readInts(src, out);
        return out;
    }

    @Override
    public void readInts(Storage src, int[] dst) {
        CpuStorage s = CpuStorage.of(src);
        if (s.i != null) {
            System.arraycopy(s.i, 0, dst, 0, s.size);
            return;
        }
        for (int k = 0; k < s.size; k++) {
            dst[k] = (int) s.get(k);
        }
    }

    /** The meaning of each unary op. */
    static double unary(Unary op, double x) {
        return switch (op) {
            case NEG -> -x;
            case EXP -> Math.exp(x);
            case LOG -> Math.log(x);
            case TANH -> Math.tanh(x);
            case SIGMOID -> x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
            case RELU -> x > 0 ? x : 0;
            case GELU -> 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
            case GELU_GRAD -> {
                double t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
                yield 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
            }
            case SQRT -> Math.sqrt(x);
            case STEP -> x > 0 ? 1 : 0;
            case ABS -> Math.abs(x);
        };
    }

    /** The meaning of each binary op. */
    static double binary(Binary op, double a, double b) {
        return switch (op) {
            case ADD -> a + b;
            case SUB -> a - b;
            case MUL -> a * b;
            case DIV -> a / b;
            case POW -> Math.pow(a, b);
            case MAX -> Math.max(a, b);
            case GT -> a > b ? 1 : 0;
            case EQ -> a == b ? 1 : 0;
        };
    }

    @Override
    public void unary(Unary op, Storage x, Storage out, int n) {
        CpuStorage a = CpuStorage.of(x);
        CpuStorage o = CpuStorage.out(out);
        for (int k = 0; k < n; k++) {
            o.set(k, unary(op, a.get(k)));
        }
    }

    @Override
    public void binary(Binary op, Storage a, int[] aStrides, Storage b, int[] bStrides, Storage out, Shape shape) {
        CpuStorage sa = CpuStorage.of(a);
        CpuStorage sb = CpuStorage.of(b);
        CpuStorage so = CpuStorage.out(out);
        int[] dims = shape.dims();
        int n = shape.size();
        int[] idx = new int[dims.length];
        for (int k = 0; k < n; k++) {
            int ia = 0;
            int ib = 0;
            for (int r = 0; r < dims.length; r++) {
                ia += idx[r] * aStrides[r];
                ib += idx[r] * bStrides[r];
            }
            so.set(k, binary(op, sa.get(ia), sb.get(ib)));
            increment(idx, dims);
        }
    }

    static void increment(int[] idx, int[] dims) {
        for (int r = dims.length - 1; r >= 0; r--) {
            if (++idx[r] < dims[r]) {
                return;
            }
            idx[r] = 0;
        }
    }

    @Override
    public void reduce(Reduce op, Storage x, int outer, int len, int inner, Storage out) {
        CpuStorage sx = CpuStorage.of(x);
        CpuStorage so = CpuStorage.out(out);
        for (int o = 0; o < outer; o++) {
            for (int i = 0; i < inner; i++) {
                double acc = op == Reduce.SUM ? 0 : Double.NEGATIVE_INFINITY;
                for (int l = 0; l < len; l++) {
                    double v = sx.get((o * len + l) * inner + i);
                    acc = op == Reduce.SUM ? acc + v : Math.max(acc, v);
                }
                so.set(o * inner + i, acc);
            }
        }
    }

    @Override
    public void matmul(MatmulSpec s, Storage a, Storage b, Storage c) {
        CpuStorage sa = CpuStorage.of(a);
        CpuStorage sb = CpuStorage.of(b);
        CpuStorage sc = CpuStorage.out(c);
        for (int p = 0; p < s.batch(); p++) {
            int oa = p * s.strideA();
            int ob = p * s.strideB();
            int oc = p * s.m() * s.n();
            for (int i = 0; i < s.m(); i++) {
                for (int j = 0; j < s.n(); j++) {
                    double acc = 0;
                    for (int q = 0; q < s.k(); q++) {
                        double av = sa.get(oa + (s.transA() ? q * s.m() + i : i * s.k() + q));
                        double bv = sb.get(ob + (s.transB() ? j * s.k() + q : q * s.n() + j));
                        acc += av * bv;
                    }
                    int ic = oc + i * s.n() + j;
                    sc.set(ic, s.accumulate() ? sc.get(ic) + acc : acc);
                }
            }
        }
    }

    @Override
    public void copy(Storage src, int srcOffset, int[] srcStrides, Storage dst, int dstOffset, int[] dstStrides, Shape shape) {
        CpuStorage s = CpuStorage.of(src);
        CpuStorage d = CpuStorage.out(dst);
        int[] dims = shape.dims();
        int n = shape.size();
        int[] idx = new int[dims.length];
        for (int k = 0; k < n; k++) {
            int is = srcOffset;
            int id = dstOffset;
            for (int r = 0; r < dims.length; r++) {
                is += idx[r] * srcStrides[r];
                id += idx[r] * dstStrides[r];
            }
            d.set(id, s.get(is));
            increment(idx, dims);
        }
    }

    static int checkedId(CpuStorage ids, int r, int tableRows) {
        int id = ids.i[r];
        if (id < 0 || id >= tableRows) {
            throw new CellarException("id " + id + " at position " + r + " is outside the table of " + tableRows + " rows");
        }
        return id;
    }

    @Override
    public void gather(Storage table, Storage ids, Storage out, int rows, int width) {
        CpuStorage t = CpuStorage.of(table);
        CpuStorage ix = CpuStorage.of(ids);
        CpuStorage o = CpuStorage.out(out);
        int tableRows = width == 0 ? 0 : t.size / width;
        for (int r = 0; r < rows; r++) {
            int id = checkedId(ix, r, tableRows);
            for (int c = 0; c < width; c++) {
                o.set(r * width + c, t.get(id * width + c));
            }
        }
    }

    @Override
    public void scatterAdd(Storage src, Storage ids, Storage table, int rows, int width) {
        CpuStorage s = CpuStorage.of(src);
        CpuStorage ix = CpuStorage.of(ids);
        CpuStorage t = CpuStorage.out(table);
        int tableRows = width == 0 ? 0 : t.size / width;
        for (int r = 0; r < rows; r++) {
            int id = checkedId(ix, r, tableRows);
            for (int c = 0; c < width; c++) {
                t.set(id * width + c, t.get(id * width + c) + s.get(r * width + c));
            }
        }
    }
}
