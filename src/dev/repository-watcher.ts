/**
 * Watches every folder of the repository, each with its own non-recursive fs.watch, and reports
 * changed paths relative to the root. Not `fs.watch(root, { recursive: true })`: on Linux, Node
 * 20 implements that by watching each file, and a file an editor saves by renaming (vim's backup,
 * an atomic write) is watched no more, so its next saves went unseen. A folder's watch reports
 * its entries by name whatever their inode. Hidden folders and node_modules are not watched.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface RepositoryWatcher {
  close(): void;
}

export function watchRepository(root: string, onChange: (rel: string) => void, onError: (err: Error) => void): RepositoryWatcher {
  const watchers = new Map<string, fs.FSWatcher>();

  /** `announce`: a folder new since the start; files written into it before its watch began are reported. */
  const watchTree = (rel: string, announce = false): void => {
    const dir = path.join(root, rel);
    if (watchers.has(rel)) return;
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, (_event, name) => {
        if (!name) return;
        const child = rel ? `${rel}/${name}` : name;
        if (!skipped(name)) {
          // A new folder (a model, a version) is watched from now on; a removed one is dropped.
          if (isDir(path.join(root, child))) watchTree(child, true);
          else unwatchTree(child);
        }
        onChange(child);
      });
    } catch (err) {
      // The root must be watched; a folder removed meanwhile need not.
      if (rel === '') throw err;
      return;
    }
    watcher.on('error', (err) => {
      unwatchTree(rel);
      if (rel === '') onError(err);
    });
    watchers.set(rel, watcher);
    let names: fs.Dirent[] = [];
    try {
      names = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      // Removed meanwhile.
    }
    for (const d of names) {
      const child = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory() && !skipped(d.name)) watchTree(child, announce);
      else if (announce && d.isFile()) onChange(child);
    }
  };

  const unwatchTree = (rel: string): void => {
    for (const [key, w] of watchers) {
      if (key === rel || key.startsWith(`${rel}/`)) {
        w.close();
        watchers.delete(key);
      }
    }
  };

  watchTree('');
  return {
    close() {
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}

function skipped(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules';
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
