package dev.cellar.kernels.opencl;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Looks for the system's OpenCL ICD loader ({@code libOpenCL.so.1}) before JOCL is touched. Without it, JOCL's native
 * code prints "Could not load libOpenCL.so.1 ..." with C stdio to standard output, where it would end up in the text
 * {@code cellar generate} prints; checked first, a machine without OpenCL gets a quiet "unavailable" instead. Only
 * Linux is checked: elsewhere the loader lives in the OS (OpenCL.framework, OpenCL.dll) and JOCL is tried directly.
 */
final class OpenClLoader {
    static final List<String> NAMES = List.of("libOpenCL.so.1", "libOpenCL.so");
    private static final List<String> STANDARD = List.of("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib",
            "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu");

    private OpenClLoader() {
    }

    /** Thrown instead of letting JOCL fail loudly; its message says what to install. */
    static final class Missing extends RuntimeException {
        Missing() {
            super("no OpenCL ICD loader: libOpenCL.so.1 is not installed (not in the dynamic linker's cache, LD_LIBRARY_PATH"
                    + " or the usual library directories)");
        }
    }

    /** Throws {@link Missing} when this is Linux and no libOpenCL can be found. */
    static void require() {
        if (!present(System.getProperty("os.name", ""), searchPath(), linkerCache())) {
            throw new Missing();
        }
    }

    /** True off Linux; on Linux when the linker cache names libOpenCL.so or a directory of {@code dirs} holds it. */
    static boolean present(String os, List<Path> dirs, String linkerCache) {
        if (!os.toLowerCase(Locale.ROOT).startsWith("linux")) {
            return true;
        }
        if (linkerCache.contains("libOpenCL.so")) {
            return true;
        }
        for (Path d : dirs) {
            for (String n : NAMES) {
                if (Files.exists(d.resolve(n))) {
                    return true;
                }
            }
        }
        return false;
    }

    private static List<Path> searchPath() {
        List<Path> dirs = new ArrayList<>();
        for (String list : new String[]{System.getenv("LD_LIBRARY_PATH"), System.getProperty("java.library.path")}) {
            if (list != null) {
                for (String d : list.split(File.pathSeparator)) {
                    if (!d.isBlank()) {
                        dirs.add(Path.of(d));
                    }
                }
            }
        }
        STANDARD.forEach(d -> dirs.add(Path.of(d)));
        return dirs;
    }

    /** /etc/ld.so.cache as Latin-1 text (library names are ASCII inside it); empty when it cannot be read. */
    private static String linkerCache() {
        try {
            return new String(Files.readAllBytes(Path.of("/etc/ld.so.cache")), StandardCharsets.ISO_8859_1);
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }
}
