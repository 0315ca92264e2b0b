package dev.cellar.api;

/** Impossible shapes: {@code matmul (2, 3) @ (4, 5): inner dimensions 3 and 4 differ}. */
public class ShapeException extends CellarException {
    private static final long serialVersionUID = 1L;

    public ShapeException(String message) {
        super(message);
    }
}
