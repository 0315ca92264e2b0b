package dev.cellar.api;

import java.util.Arrays;

/** An immutable list of dimension sizes. Row-major (C order) contiguous strides. Rank 0 is a scalar. */
public final class Shape {
    private static final Shape SCALAR = new Shape(new int[0]);
    private final int[] dims;

    private Shape(int[] dims) {
        this.dims = dims;
    }

    public static Shape of(int... dims) {
        if (dims.length == 0) {
            return SCALAR;
        }
        for (int d : dims) {
            if (d < 0) {
                throw new ShapeException("negative dimension " + d + " in " + Arrays.toString(dims));
            }
        }
        return new Shape(dims.clone());
    }

    public static Shape scalar() {
        return SCALAR;
    }

    public int rank() {
        return dims.length;
    }

    /** Dimension {@code i}; negative {@code i} counts from the end like Python. */
    public int dim(int i) {
        return dims[axis(i)];
    }

    /** Normalises a possibly negative axis and checks its range. */
    public int axis(int i) {
        int a = i < 0 ? i + dims.length : i;
        if (a < 0 || a >= dims.length) {
            throw new ShapeException("axis " + i + " out of range for shape " + this);
        }
        return a;
    }

    public int[] dims() {
        return dims.clone();
    }

    /** Number of elements (1 for a scalar). */
    public int size() {
        long n = 1;
        for (int d : dims) {
            n *= d;
        }
        if (n > Integer.MAX_VALUE) {
            throw new ShapeException("shape " + this + " has " + n + " elements, more than " + Integer.MAX_VALUE);
        }
        return (int) n;
    }

    /** Contiguous row-major strides in elements. */
    public int[] strides() {
        int[] s = new int[dims.length];
        int acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= dims[i];
        }
        return s;
    }

    /** This shape with dimension {@code axis} replaced (itself when the size is the same). */
    public Shape with(int axis, int size) {
        int a = axis(axis);
        if (dims[a] == size) {
            return this;
        }
        if (size < 0) {
            throw new ShapeException("negative dimension " + size + " for axis " + axis + " of " + this);
        }
        int[] d = dims.clone();
        d[a] = size;
        return new Shape(d);
    }

    /** A copy without dimension {@code axis}. */
    public Shape without(int axis) {
        int a = axis(axis);
        int[] d = new int[dims.length - 1];
        System.arraycopy(dims, 0, d, 0, a);
        System.arraycopy(dims, a + 1, d, a, dims.length - a - 1);
        return d.length == 0 ? SCALAR : new Shape(d);
    }

    /** NumPy broadcasting of two shapes, or a ShapeException naming both. */
    public static Shape broadcast(Shape a, Shape b) {
        if (a == b || Arrays.equals(a.dims, b.dims)) {
            return a;
        }
        int r = Math.max(a.rank(), b.rank());
        int[] out = new int[r];
        for (int i = 0; i < r; i++) {
            int da = i < r - a.rank() ? 1 : a.dims[i - (r - a.rank())];
            int db = i < r - b.rank() ? 1 : b.dims[i - (r - b.rank())];
            if (da != db && da != 1 && db != 1) {
                throw new ShapeException("shapes " + a + " and " + b + " do not broadcast: dimension " + i
                        + " is " + da + " vs " + db);
            }
            out[i] = da == 1 ? db : da;
        }
        return new Shape(out); // r > 0: a and b differ
    }

    /**
     * Strides to read a tensor of this (contiguous) shape as if it had shape {@code target}: broadcast dimensions get
     * stride 0. {@code target} must be a broadcast of this shape.
     */
    public int[] broadcastStrides(Shape target) {
        int r = target.rank();
        if (rank() > r) {
            throw new ShapeException("cannot broadcast " + this + " to " + target);
        }
        if (Arrays.equals(dims, target.dims)) {
            return strides();
        }
        int[] own = strides();
        int[] s = new int[r];
        for (int i = 0; i < r; i++) {
            int j = i - (r - rank());
            if (j < 0) {
                s[i] = 0;
            } else if (dims[j] == target.dims[i]) {
                s[i] = own[j];
            } else if (dims[j] == 1) {
                s[i] = 0;
            } else {
                throw new ShapeException("cannot broadcast " + this + " to " + target);
            }
        }
        return s;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && Arrays.equals(dims, s.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(dims[i]);
        }
        return sb.append(dims.length == 1 ? ",)" : ")").toString();
    }
}
