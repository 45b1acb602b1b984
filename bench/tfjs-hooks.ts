// Node module hooks that let us import one file from tfjs-core's ES-module build:
// `dist/register_all_gradients.js`. The CommonJS bundle that Node loads for '@tensorflow/tfjs-core'
// registers no gradients (the umbrella '@tensorflow/tfjs' package adds them), and its ES-module files use
// extensionless relative imports in a package without "type": "module", which Node refuses. Here
// such imports get their '.js' and those files are loaded as ES modules. The copy of tfjs-core code this
// loads shares the kernel/gradient registries and the engine with the CommonJS bundle: tfjs keeps
// them on a global object, exactly so that several copies can coexist.

const ESM_DIR = '/@tensorflow/tfjs-core/dist/';
// The bundles in the same folder are real CommonJS and must stay so.
const isEsmFile = (url: string): boolean =>
  url.includes(ESM_DIR) && url.endsWith('.js') && !/\/tf-core[^/]*\.js$/.test(url);

type Next = (specifier: string, context: any) => Promise<any>;

export async function resolve(specifier: string, context: any, next: Next): Promise<any> {
  const parent: string | undefined = context.parentURL;
  if (parent && isEsmFile(parent) && specifier.startsWith('.') && !specifier.endsWith('.js')) {
    try {
      return await next(`${specifier}.js`, context);
    } catch {
      return next(`${specifier}/index.js`, context);
    }
  }
  return next(specifier, context);
}

export async function load(url: string, context: any, next: Next): Promise<any> {
  if (isEsmFile(url)) return next(url, { ...context, format: 'module' });
  return next(url, context);
}
