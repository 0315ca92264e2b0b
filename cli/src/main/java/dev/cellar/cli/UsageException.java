package dev.cellar.cli;

import dev.cellar.api.CellarException;

/** Wrong flags or arguments: exit code 2. */
public class UsageException extends CellarException {
    private static final long serialVersionUID = 1L;

    public UsageException(String message) {
        super(message);
    }
}
