package dev.cellar.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The top level: parse errors, help texts, and the --verbose switch for stack traces. */
class MainTest {
    @TempDir
    Path dir;

    @Test
    void unknownSubcommand() {
        assertUsage(Cli.run("frobnicate"), "Unmatched argument at index 0: 'frobnicate'", "(see 'cellar --help')");
    }

    @Test
    void misspelledSubcommandGetsASuggestion() {
        assertUsage(Cli.run("genrate", "--prompt", "x"), "'genrate'", "did you mean generate");
    }

    @Test
    void unknownOption() {
        assertUsage(Cli.run("train", "--data", "x.txt", "--frob"), "Unknown option: '--frob'", "(see 'cellar train --help')");
    }

    @Test
    void noCommand() {
        assertUsage(Cli.run(), "missing command", "cellar --help");
    }

    @Test
    void missingOptionValue() {
        assertUsage(Cli.run("train", "--data"), "Missing required parameter for option '--data'");
    }

    /** Help texts are picocli format strings: a bare % in a description used to print a WARN to System.err. */
    @ParameterizedTest
    @ValueSource(strings = {"train", "generate", "eval", "export", "cells", "doctor", "bench"})
    void helpPrintsWithoutPicocliWarnings(String command) {
        PrintStream old = System.err;
        ByteArrayOutputStream sys = new ByteArrayOutputStream();
        Cli.Result r;
        try {
            System.setErr(new PrintStream(sys, true, StandardCharsets.UTF_8));
            r = Cli.run(command, "--help");
        } finally {
            System.setErr(old);
        }
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("Usage: cellar " + command), r.out());
        assertEquals("", r.err());
        assertEquals("", sys.toString(StandardCharsets.UTF_8));
        assertFalse(r.out().contains("Could not format"), r.out());
    }

    @Test
    void trainHelpDescribesTheValidationSplit() {
        String help = Cli.run("train", "--help").out().replaceAll("\\s+", " ");
        assertTrue(help.contains("its last --val-fraction is held out for validation"), help);
    }

    @Test
    void stackTraceOnlyWithVerbose() {
        String missing = dir.resolve("missing.txt").toString();
        Cli.Result quiet = Cli.run("train", "--data", missing);
        assertEquals(1, quiet.code());
        assertFalse(quiet.err().contains("\tat "), quiet.err());
        Cli.Result verbose = Cli.run("train", "--data", missing, "--verbose");
        assertEquals(1, verbose.code());
        assertTrue(verbose.err().startsWith("error: --data " + missing + ": file not found\n"), verbose.err());
        assertTrue(verbose.err().contains("\tat dev.cellar."), verbose.err());
    }

    @Test
    void versionAndTopLevelHelp() {
        Cli.Result v = Cli.run("--version");
        assertEquals(0, v.code());
        assertTrue(v.out().startsWith("cellar "), v.out());
        Cli.Result h = Cli.run("--help");
        assertEquals(0, h.code());
        assertTrue(h.out().contains("Exit codes: 0 ok, 2 usage error, 1 any other failure"), h.out());
    }
}
