// CSS files are bundled by esbuild into <widget>.css, which the Python class loads as `_css`.
declare module "*.css";
