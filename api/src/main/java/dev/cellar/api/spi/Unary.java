package dev.cellar.api.spi;

/** Elementwise unary primitives. Semantics are those of {@code cpu-reference}. */
public enum Unary {
    NEG, EXP, LOG, TANH, SIGMOID, RELU,
    /** tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    GELU,
    /** d GELU / dx of the tanh approximation */
    GELU_GRAD,
    SQRT,
    /** 1 where x > 0, else 0 (ReLU's derivative) */
    STEP,
    ABS
}
