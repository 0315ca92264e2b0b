package dev.cellar.kernels.opencl.internal;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One OpenCL device with the limits Cellar sizes its kernels from. {@code index} counts over all platforms;
 * {@code gpu} is true for GPU and accelerator devices (not for CPU devices such as PoCL's).
 */
public record ClDevice(int index, cl_platform_id platform, cl_device_id device, String platformName, String name,
                       long maxWorkGroupSize, long localMemBytes, boolean fp64, boolean gpu) {

    /** Lowest work-group size and local memory the GEMM kernel needs (the 32x32 tile configuration). */
    public static final long MIN_WORK_GROUP = 64;
    public static final long MIN_LOCAL_MEM = 16 * 1024;

    public boolean usable() {
        return maxWorkGroupSize >= MIN_WORK_GROUP && localMemBytes >= MIN_LOCAL_MEM;
    }

    public String summary() {
        return "#" + index + " " + name + " (" + platformName + ", max work-group " + maxWorkGroupSize + ", local mem "
                + localMemBytes / 1024 + " KiB" + (fp64 ? ", fp64" : ", no fp64") + (gpu ? ", gpu" : ", cpu") + ")";
    }

    /** Every device of every platform. Throws what JOCL throws (UnsatisfiedLinkError, CLException). */
    public static List<ClDevice> list() {
        CL.setExceptionsEnabled(true);
        int[] count = new int[1];
        CL.clGetPlatformIDs(0, null, count);
        cl_platform_id[] platforms = new cl_platform_id[count[0]];
        if (platforms.length > 0) {
            CL.clGetPlatformIDs(platforms.length, platforms, null);
        }
        List<ClDevice> out = new ArrayList<>();
        for (cl_platform_id p : platforms) {
            int[] n = new int[1];
            int rc;
            try {
                rc = CL.clGetDeviceIDs(p, CL.CL_DEVICE_TYPE_ALL, 0, null, n);
            } catch (org.jocl.CLException e) {
                continue; // CL_DEVICE_NOT_FOUND on this platform
            }
            if (rc != CL.CL_SUCCESS || n[0] == 0) {
                continue;
            }
            cl_device_id[] ds = new cl_device_id[n[0]];
            CL.clGetDeviceIDs(p, CL.CL_DEVICE_TYPE_ALL, ds.length, ds, null);
            String pname = platformString(p, CL.CL_PLATFORM_NAME);
            for (cl_device_id d : ds) {
                String ext = deviceString(d, CL.CL_DEVICE_EXTENSIONS);
                out.add(new ClDevice(out.size(), p, d, pname, deviceString(d, CL.CL_DEVICE_NAME).trim(),
                        deviceLong(d, CL.CL_DEVICE_MAX_WORK_GROUP_SIZE, Sizeof.size_t),
                        deviceLong(d, CL.CL_DEVICE_LOCAL_MEM_SIZE, Sizeof.cl_ulong),
                        ext.contains("cl_khr_fp64"),
                        (deviceLong(d, CL.CL_DEVICE_TYPE, Sizeof.cl_ulong)
                                & (CL.CL_DEVICE_TYPE_GPU | CL.CL_DEVICE_TYPE_ACCELERATOR)) != 0));
            }
        }
        return out;
    }

    static String platformString(cl_platform_id p, int param) {
        long[] size = new long[1];
        CL.clGetPlatformInfo(p, param, 0, null, size);
        byte[] b = new byte[(int) size[0]];
        CL.clGetPlatformInfo(p, param, b.length, Pointer.to(b), null);
        return cString(b);
    }

    static String deviceString(cl_device_id d, int param) {
        long[] size = new long[1];
        CL.clGetDeviceInfo(d, param, 0, null, size);
        byte[] b = new byte[(int) size[0]];
        CL.clGetDeviceInfo(d, param, b.length, Pointer.to(b), null);
        return cString(b);
    }

    static long deviceLong(cl_device_id d, int param, int bytes) {
        if (bytes == Sizeof.cl_int) {
            int[] v = new int[1];
            CL.clGetDeviceInfo(d, param, bytes, Pointer.to(v), null);
            return v[0];
        }
        long[] v = new long[1];
        CL.clGetDeviceInfo(d, param, bytes, Pointer.to(v), null);
        return v[0];
    }

    private static String cString(byte[] b) {
        int n = 0;
        while (n < b.length && b[n] != 0) {
            n++;
        }
        return new String(b, 0, n, StandardCharsets.UTF_8);
    }
}
