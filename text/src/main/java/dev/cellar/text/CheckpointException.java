package dev.cellar.text;

import dev.cellar.api.CellarException;

/** A checkpoint file that cannot be used, with what is wrong in one line. */
public final class CheckpointException extends CellarException {
    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }
}
