package dev.cellar.api.spi;

/** Elementwise binary primitives over broadcast operands. Comparisons return 1 or 0 in the output dtype. */
public enum Binary {
    ADD, SUB, MUL, DIV, POW, MAX,
    /** 1 where a > b */
    GT,
    /** 1 where a == b */
    EQ
}
