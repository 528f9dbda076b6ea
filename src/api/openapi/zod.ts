/**
 * zod-to-openapi's `.openapi()` (descriptions, examples, component names) on zod's schemas: a
 * method added to zod's prototypes, once, before any module of the document uses it. It adds
 * metadata only: what a schema accepts is unchanged.
 */
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

extendZodWithOpenApi(z);
