package dev.cellar.api;

/** Base of every error Cellar raises on purpose. The message says what is wrong and, where possible, how to fix it. */
public class CellarException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public CellarException(String message) {
        super(message);
    }

    public CellarException(String message, Throwable cause) {
        super(message, cause);
    }
}
