package hybridrec.testing;

import java.io.IOException;
import java.util.Iterator;

import io.delta.storage.CloseableIterator;
import io.delta.storage.LogStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;

/**
 * Test only (tests/crash_harness.py): a LogStore that SIGKILLs the Python workers, the Python driver
 * and this JVM at the moment Delta is about to write the commit file of one table, after
 * every data file of that write is in place. Everything else goes to the LogStore named by the
 * Hadoop setting hybridrec.test.delegate (the one the scheme would use otherwise).
 */
public class KillBeforeCommitLogStore extends LogStore {
    private final LogStore delegate;

    public KillBeforeCommitLogStore(Configuration conf) {
        super(conf);
        try {
            delegate = (LogStore) Class.forName(conf.get("hybridrec.test.delegate"))
                    .getConstructor(Configuration.class).newInstance(conf);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("hybridrec.test.delegate: " + e, e);
        }
    }

    @Override
    public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration conf) throws IOException {
        String table = System.getenv("HYBRIDREC_KILL_TABLE");
        String p = path.toString();
        if (!overwrite && table != null && p.endsWith(".json") && p.contains("/" + table + "/_delta_log/")) {
            java.nio.file.Files.writeString(java.nio.file.Path.of(System.getenv("HYBRIDREC_KILL_MARKER")),
                    "KillBeforeCommitLogStore: SIGKILL before " + p);
            // SIGKILL the Python workers, then the Python driver that started this JVM, then this JVM.
            ProcessHandle.current().descendants().forEach(ProcessHandle::destroyForcibly);
            ProcessHandle.current().parent().ifPresent(ProcessHandle::destroyForcibly);
            Runtime.getRuntime().halt(137);
        }
        delegate.write(path, actions, overwrite, conf);
    }

    @Override
    public CloseableIterator<String> read(Path path, Configuration conf) throws IOException {
        return delegate.read(path, conf);
    }

    @Override
    public Iterator<FileStatus> listFrom(Path path, Configuration conf) throws IOException {
        return delegate.listFrom(path, conf);
    }

    @Override
    public Path resolvePathOnPhysicalStorage(Path path, Configuration conf) throws IOException {
        return delegate.resolvePathOnPhysicalStorage(path, conf);
    }

    @Override
    public Boolean isPartialWriteVisible(Path path, Configuration conf) throws IOException {
        return delegate.isPartialWriteVisible(path, conf);
    }
}
