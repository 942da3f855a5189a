package hybridrec.delta;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;

import io.delta.storage.S3SingleDriverLogStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStreamBuilder;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.RemoteFileChangedException;

/**
 * Delta's S3 LogStore with mutual exclusion between Spark drivers, from S3 itself.
 *
 * <p>{@link S3SingleDriverLogStore} guards each commit file ({@code _delta_log/N.json}) with a lock
 * inside one JVM only, so two spark-submits committing to one table at once can both write N.json
 * and one commit is lost. S3 (since August 2024) and S3-compatible servers accept a conditional PUT
 * ({@code If-None-Match: *}): the second writer gets 412. Hadoop's s3a (3.4.2+) sends it when the
 * file is created with {@code fs.option.create.conditional.overwrite}; this class does that for
 * every new commit file and reports the 412 as {@link java.nio.file.FileAlreadyExistsException},
 * the signal Delta's optimistic transaction expects: it re-reads the log, checks the winning commit
 * for logical conflicts and retries at the next version or fails with its own conflict error.
 *
 * <p>Enable with {@code spark.delta.logStore.s3a.impl=hybridrec.delta.S3ConditionalPutLogStore}
 * (hybridrec's session does this). Stores that reject the header fail loudly at the first commit.
 */
public class S3ConditionalPutLogStore extends S3SingleDriverLogStore {

    static final String CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite";

    public S3ConditionalPutLogStore(Configuration hadoopConf) {
        super(hadoopConf);
    }

    @Override
    public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
            throws IOException {
        if (overwrite) {  // checkpoints and _last_checkpoint: replacing them is allowed
            super.write(path, actions, true, hadoopConf);
            return;
        }
        FileSystem fs = path.getFileSystem(hadoopConf);
        FSDataOutputStreamBuilder<?, ?> builder = fs.createFile(path).overwrite(false);
        builder.must(CONDITIONAL_CREATE, true);
        try (OutputStream out = builder.build()) {
            while (actions.hasNext()) {
                out.write((actions.next() + "\n").getBytes(StandardCharsets.UTF_8));
            }
        } catch (RemoteFileChangedException | org.apache.hadoop.fs.FileAlreadyExistsException e) {
            // 412 Precondition Failed: another writer created this version first.
            java.nio.file.FileAlreadyExistsException taken =
                    new java.nio.file.FileAlreadyExistsException(path.toString());
            taken.initCause(e);
            throw taken;
        }
    }
}
