package dev.cellar.api;

/** Element types. F32 trains, F64 checks gradients, I32 holds token ids. */
public enum DType {
    F32(4), F64(8), I32(4);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloating() {
        return this != I32;
    }
}
