package dev.cellar.cli;

import java.io.PrintStream;

/** Where commands write: stdout for results, stderr for progress and errors. */
record Io(PrintStream out, PrintStream err) {
}
