package dev.cellar.cli;

import ch.qos.logback.classic.Level;
import com.google.inject.ConfigurationException;
import com.google.inject.Guice;
import com.google.inject.Injector;
import dev.cellar.api.CellarException;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;

/** The {@code cellar} command: the composition root (the only Guice injector) and the error-to-exit-code policy. */
@Command(name = "cellar", mixinStandardHelpOptions = true, version = "cellar 0.1.0",
        description = "Neural sequence models in Java: train, evaluate and sample RNN, LSTM, GRU and Transformer language models.",
        subcommands = {GenerateCommand.class, TrainCommand.class, EvalCommand.class, CellsCommand.class, DoctorCommand.class,
                BenchCommand.class, ExportCommand.class, CompareCommand.class, ProbeCommand.class, CommandLine.HelpCommand.class},
        footer = {"", "Exit codes: 0 ok, 2 usage error, 1 any other failure. Add --verbose for logs and stack traces."})
public final class Main implements Runnable {
    @Option(names = "--verbose", scope = CommandLine.ScopeType.INHERIT, description = "debug logs and stack traces")
    boolean verbose;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing command; try 'cellar generate --prompt \"To be\"' or 'cellar --help'");
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs the CLI and returns the exit code (tests call this in-process). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        boolean verbose = Arrays.asList(args).contains("--verbose");
        ((ch.qos.logback.classic.Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME))
                .setLevel(verbose ? Level.DEBUG : Level.WARN);
        Registry registry;
        try {
            Path plugins = pluginDir(args);
            boolean flag = Arrays.stream(args).anyMatch(a -> a.equals("--plugins") || a.startsWith("--plugins="));
            registry = Registry.discover(plugins, flag ? "--plugins " : "CELLAR_PLUGINS=");
        } catch (CellarException e) {
            return fail(err, e, verbose);
        }
        registry.warnings().forEach(w -> err.println("warning: " + w));
        Injector injector = Guice.createInjector(new CellarModule(registry), b -> b.bind(Io.class).toInstance(new Io(out, err)));
        CommandLine cli = new CommandLine(Main.class, new CommandLine.IFactory() {
            @Override
            public <K> K create(Class<K> cls) throws Exception {
                try {
                    return injector.getInstance(cls);
                } catch (ConfigurationException e) {
                    return CommandLine.defaultFactory().create(cls);
                }
            }
        });
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        cli.setParameterExceptionHandler((ex, a) -> {
            String hint = ex instanceof CommandLine.UnmatchedArgumentException u && !u.getSuggestions().isEmpty()
                    ? "; did you mean " + String.join(" or ", u.getSuggestions()) + "?" : "";
            err.println("error: " + ex.getMessage() + hint + " (see '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help')");
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, c, parsed) -> fail(err, ex, verbose));
        return cli.execute(args);
    }

    static int fail(PrintStream err, Throwable ex, boolean verbose) {
        if (ex instanceof CellarException) {
            err.println("error: " + ex.getMessage());
        } else {
            err.println("error: " + ex + " (this is a bug; rerun with --verbose and report it)");
        }
        if (verbose) {
            ex.printStackTrace(err);
        }
        return ex instanceof UsageException ? 2 : 1;
    }

    /** --plugins DIR or --plugins=DIR anywhere in the arguments, else CELLAR_PLUGINS; discovery needs it first. */
    static Path pluginDir(String[] args) {
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--plugins")) {
                if (i + 1 >= args.length) {
                    throw new UsageException("--plugins needs a directory");
                }
                return Path.of(args[i + 1]);
            }
            if (args[i].startsWith("--plugins=")) {
                return Path.of(args[i].substring("--plugins=".length()));
            }
        }
        String env = System.getenv("CELLAR_PLUGINS");
        return env == null || env.isBlank() ? null : Path.of(env);
    }
}
